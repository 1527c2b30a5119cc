"""A cache of the composited image, tile by tile.

Views ask for the whole image (fit to window, export, thumbnails) far more often than layers
change everywhere; after a brush stroke only the touched tiles are composited again. Each cached tile
remembers a signature of what it was made from (the visible layers, their settings and the versions
of their tiles under it), so the cache can never serve a stale tile, however the layers changed.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from diffedit.document import compositor
from diffedit.document.geometry import Rect
from diffedit.document.layers import Layer
from diffedit.document.tiles import TILE_SIZE, TileKey


def tile_signature(layers: Sequence[Layer], part: Rect) -> Hashable:
    """Everything a composited tile depends on."""
    sig = []
    for layer in compositor.visible_raster_layers(layers):
        surface = layer.surface
        local = part.translated(-layer.offset[0], -layer.offset[1])
        versions = tuple(surface.tile_version(k) for k in surface.tile_keys(local))
        sig.append((layer.uid, surface.uid, surface.epoch, layer.opacity, layer.blend_mode, layer.offset, versions))
    return tuple(sig)


class Projection:
    """Composited uint8 tiles of a layer stack, keyed by tile, each with its signature."""

    def __init__(self, tile_size: int = TILE_SIZE) -> None:
        self.tile_size = tile_size
        self._tiles: dict[TileKey, tuple[Hashable, np.ndarray | None]] = {}

    def clear(self) -> None:
        self._tiles.clear()

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for _, t in self._tiles.values() if t is not None)

    def composite(self, layers: Sequence[Layer], rect: Rect, bounds: Rect) -> np.ndarray:
        """Like `compositor.composite`; whole tiles inside `bounds` come from and go to the cache."""
        out = np.zeros((max(rect.h, 0), max(rect.w, 0), 4), np.uint8)
        s = self.tile_size
        stale: list[tuple[Rect, TileKey, Hashable]] = []
        pieces: list[Rect] = []
        for part in compositor._tile_parts(rect, s):
            key = (part.x // s, part.y // s)
            whole = Rect(key[0] * s, key[1] * s, s, s).intersect(bounds)
            if part != whole:
                pieces.append(part)  # a piece of a tile: composite just that piece, cache nothing
                continue
            sig = tile_signature(layers, part)
            cached = self._tiles.get(key)
            if cached is not None and cached[0] == sig:
                self._blit(out, rect, part, cached[1])
            else:
                stale.append((part, key, sig))
        fresh = compositor.composite_tiles(layers, [p for p, _, _ in stale] + pieces)
        for (part, key, sig), pixels in zip(stale, fresh, strict=False):
            pixels = None if pixels is None else np.ascontiguousarray(pixels)
            self._tiles[key] = (sig, pixels)
            self._blit(out, rect, part, pixels)
        for part, pixels in zip(pieces, fresh[len(stale) :], strict=True):
            self._blit(out, rect, part, pixels)
        return out

    @staticmethod
    def _blit(out: np.ndarray, rect: Rect, part: Rect, pixels: np.ndarray | None) -> None:
        if pixels is not None:
            out[part.y - rect.y : part.bottom - rect.y, part.x - rect.x : part.right - rect.x] = pixels
