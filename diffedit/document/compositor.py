"""Flattening a stack of raster layers to RGBA, for the whole image or just a dirty rectangle.

Works tile by tile in premultiplied float32 (a tile fits in cache), skips layers with no pixels in a
tile, and starts from the topmost opaque normal tile because nothing below it can show.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffedit.document.blend import BlendMode, composite_onto, unpremultiply_to_uint8
from diffedit.document.geometry import Rect
from diffedit.document.layers import Layer, RasterLayer
from diffedit.document.tiles import TILE_SIZE


def visible_raster_layers(layers: Sequence[Layer]) -> list[RasterLayer]:
    return [la for la in layers if isinstance(la, RasterLayer) and la.visible and la.opacity > 0]


def _layer_pixels(layer: RasterLayer, rect: Rect) -> np.ndarray | None:
    """The layer's pixels under a document rectangle, or None when it has none there."""
    local = rect.translated(-layer.offset[0], -layer.offset[1])
    surface = layer.surface
    keys = list(surface.tile_keys(local))
    if not keys or all(surface.tile(k) is None for k in keys):
        return None
    s = surface.tile_size
    if len(keys) == 1 and local.x % s == 0 and local.y % s == 0 and local.w <= s and local.h <= s:
        if local.right <= surface.width and local.bottom <= surface.height:
            return surface.tile(keys[0])[: local.h, : local.w]  # type: ignore[index]
    return surface.read(local)


def _covers_opaquely(layer: RasterLayer, rect: Rect) -> bool:
    """True when the layer hides everything below it inside `rect` (one opaque aligned tile)."""
    if layer.blend_mode is not BlendMode.NORMAL or layer.opacity < 1.0:
        return False
    local = rect.translated(-layer.offset[0], -layer.offset[1])
    surface = layer.surface
    if not surface.bounds.intersect(local) == local:
        return False
    keys = list(surface.tile_keys(local))
    return all(surface.is_tile_opaque(k) for k in keys)


def _contributions(layers: Sequence[Layer], rect: Rect) -> list[tuple[RasterLayer, np.ndarray]]:
    """The visible layers with pixels in `rect`, from the topmost opaque cover upwards."""
    stack = visible_raster_layers(layers)
    start = 0
    for i in range(len(stack) - 1, -1, -1):
        if _covers_opaquely(stack[i], rect):
            start = i
            break
    found = []
    for layer in stack[start:]:
        pixels = _layer_pixels(layer, rect)
        if pixels is not None:
            found.append((layer, pixels))
    return found


def composite_premultiplied(layers: Sequence[Layer], rect: Rect) -> np.ndarray:
    """Premultiplied planar float32 (4, h, w) composite of the visible raster layers over `rect`."""
    acc = np.zeros((4, rect.h, rect.w), np.float32)
    for layer, pixels in _contributions(layers, rect):
        composite_onto(acc, pixels, layer.opacity, layer.blend_mode)
    return acc


def _composite_part(layers: Sequence[Layer], rect: Rect) -> np.ndarray | None:
    parts = _contributions(layers, rect)
    if not parts:
        return None
    first_layer, first = parts[0]
    if len(parts) == 1 and first_layer.opacity >= 1.0 and first_layer.blend_mode is BlendMode.NORMAL:
        return first  # a single normal layer at full opacity composites to itself
    acc = np.zeros((4, rect.h, rect.w), np.float32)
    for layer, pixels in parts:
        composite_onto(acc, pixels, layer.opacity, layer.blend_mode)
    return unpremultiply_to_uint8(acc)


def composite(layers: Sequence[Layer], rect: Rect, tile_size: int = TILE_SIZE) -> np.ndarray:
    """Straight-alpha uint8 (h, w, 4) composite of `layers` (bottom first) over `rect`."""
    out = np.zeros((max(rect.h, 0), max(rect.w, 0), 4), np.uint8)
    for ty in range(rect.y // tile_size, (rect.bottom - 1) // tile_size + 1):
        for tx in range(rect.x // tile_size, (rect.right - 1) // tile_size + 1):
            part = Rect(tx * tile_size, ty * tile_size, tile_size, tile_size).intersect(rect)
            if part.is_empty():
                continue
            pixels = _composite_part(layers, part)
            if pixels is not None:
                out[part.y - rect.y : part.bottom - rect.y, part.x - rect.x : part.right - rect.x] = pixels
    return out
