"""Flattening a stack of raster layers to RGBA, for the whole image or just a dirty rectangle.

Works tile by tile in premultiplied float32 (a tile fits in cache), skips layers with no pixels in a
tile, and starts from the topmost opaque normal tile because nothing below it can show.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from diffedit.document.blend import BlendMode, composite_onto, unpremultiply_to_uint8
from diffedit.document.geometry import Rect
from diffedit.document.layers import Layer, RasterLayer
from diffedit.document.tiles import TILE_SIZE


def visible_raster_layers(layers: Sequence[Layer]) -> list[RasterLayer]:
    return [la for la in layers if isinstance(la, RasterLayer) and la.visible and la.opacity > 0]


def _layer_pixels(layer: RasterLayer, rect: Rect) -> tuple[Rect, np.ndarray] | None:
    """The part of `rect` where the layer has pixels, and those pixels; None when it has none.

    When `rect` is one whole aligned tile, the part is cut to the tile's content box, so a small
    stroke in a big tile costs only its own area.
    """
    local = rect.translated(-layer.offset[0], -layer.offset[1])
    surface = layer.surface
    keys = list(surface.tile_keys(local))
    if not keys or all(surface.tile(k) is None for k in keys):
        return None
    s = surface.tile_size
    aligned = local.x % s == 0 and local.y % s == 0 and local.w <= s and local.h <= s
    if len(keys) == 1 and aligned and local.right <= surface.width and local.bottom <= surface.height:
        box = surface.tile_content_box(keys[0])
        if box is None:
            return None
        y0, y1, x0, x1 = box[0], min(box[1], local.h), box[2], min(box[3], local.w)
        if y0 >= y1 or x0 >= x1:
            return None
        tile = surface.tile(keys[0])
        return Rect(rect.x + x0, rect.y + y0, x1 - x0, y1 - y0), tile[y0:y1, x0:x1]  # type: ignore[index]
    return rect, surface.read(local)


def _covers_opaquely(layer: RasterLayer, rect: Rect) -> bool:
    """True when the layer hides everything below it inside `rect` (one opaque aligned tile)."""
    if layer.blend_mode is not BlendMode.NORMAL or layer.opacity < 1.0:
        return False
    local = rect.translated(-layer.offset[0], -layer.offset[1])
    surface = layer.surface
    if surface.bounds.intersect(local) != local:
        return False
    keys = list(surface.tile_keys(local))
    return all(surface.is_tile_opaque(k) for k in keys)


def _contributions(layers: Sequence[Layer], rect: Rect) -> list[tuple[RasterLayer, Rect, np.ndarray]]:
    """The visible layers with pixels in `rect`, from the topmost opaque cover upwards."""
    stack = visible_raster_layers(layers)
    start = 0
    for i in range(len(stack) - 1, -1, -1):
        if _covers_opaquely(stack[i], rect):
            start = i
            break
    found = []
    for layer in stack[start:]:
        hit = _layer_pixels(layer, rect)
        if hit is not None:
            found.append((layer, *hit))
    return found


def _accumulate(parts: list[tuple[RasterLayer, Rect, np.ndarray]], rect: Rect) -> np.ndarray:
    acc = np.zeros((4, rect.h, rect.w), np.float32)
    for i, (layer, area, pixels) in enumerate(parts):
        view = acc[:, area.y - rect.y : area.bottom - rect.y, area.x - rect.x : area.right - rect.x]
        composite_onto(view, pixels, layer.opacity, layer.blend_mode, first=i == 0)
    return acc


def composite_premultiplied(layers: Sequence[Layer], rect: Rect) -> np.ndarray:
    """Premultiplied planar (4, h, w) composite (colour 0..255, alpha 0..1) of the visible raster layers over `rect`."""
    return _accumulate(_contributions(layers, rect), rect)


def _composite_part(layers: Sequence[Layer], rect: Rect) -> np.ndarray | None:
    parts = _contributions(layers, rect)
    if not parts:
        return None
    first_layer, first_area, first = parts[0]
    alone = len(parts) == 1 and first_area == rect
    if alone and first_layer.opacity >= 1.0 and first_layer.blend_mode is BlendMode.NORMAL:
        return first  # a single normal layer at full opacity composites to itself
    return unpremultiply_to_uint8(_accumulate(parts, rect))


def _tile_parts(rect: Rect, tile_size: int) -> list[Rect]:
    parts = []
    for ty in range(rect.y // tile_size, (rect.bottom - 1) // tile_size + 1):
        for tx in range(rect.x // tile_size, (rect.right - 1) // tile_size + 1):
            part = Rect(tx * tile_size, ty * tile_size, tile_size, tile_size).intersect(rect)
            if not part.is_empty():
                parts.append(part)
    return parts


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)), thread_name_prefix="composite")
    return _POOL


_POOL: ThreadPoolExecutor | None = None
PARALLEL_MIN_TILES = 8


def composite_tiles(layers: Sequence[Layer], parts: list[Rect]) -> list[np.ndarray | None]:
    """Composite several areas (tiles), in parallel when there are many; None where all is empty.

    numpy releases the GIL inside its loops, so tiles composite on all cores at once.
    """
    if len(parts) < PARALLEL_MIN_TILES or (os.cpu_count() or 1) == 1:
        return [_composite_part(layers, part) for part in parts]
    return list(_pool().map(lambda part: _composite_part(layers, part), parts))


def composite(layers: Sequence[Layer], rect: Rect, tile_size: int = TILE_SIZE) -> np.ndarray:
    """Straight-alpha uint8 (h, w, 4) composite of `layers` (bottom first) over `rect`."""
    out = np.zeros((max(rect.h, 0), max(rect.w, 0), 4), np.uint8)
    parts = _tile_parts(rect, tile_size)
    for part, pixels in zip(parts, composite_tiles(layers, parts), strict=True):
        if pixels is not None:
            out[part.y - rect.y : part.bottom - rect.y, part.x - rect.x : part.right - rect.x] = pixels
    return out
