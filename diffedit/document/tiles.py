"""Sparse tiled pixel storage.

Layers are stored as square tiles created on first write, so an empty layer costs next to nothing,
compositing can skip empty areas, and undo can keep only the tiles a change touched.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from diffedit.document.geometry import Rect

TILE_SIZE = 256
TileKey = tuple[int, int]
_surface_ids = itertools.count(1)


class TiledSurface:
    """A width x height x channels uint8 image held as sparse tiles (missing tile = all zeros)."""

    def __init__(self, width: int, height: int, channels: int, tile_size: int = TILE_SIZE) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"surface size must be positive, got {width}x{height}")
        self.width = width
        self.height = height
        self.channels = channels
        self.tile_size = tile_size
        self.tiles: dict[TileKey, np.ndarray] = {}
        self._opaque: dict[TileKey, bool] = {}
        self._content: dict[TileKey, tuple[int, int, int, int] | None] = {}
        self._versions: dict[TileKey, int] = {}
        self.uid = next(_surface_ids)
        self.epoch = 0  # bumped by clear(), which touches every tile at once

    # -- geometry -------------------------------------------------------------------------
    @property
    def bounds(self) -> Rect:
        return Rect(0, 0, self.width, self.height)

    def tile_rect(self, key: TileKey) -> Rect:
        """The part of the surface a tile covers (edge tiles are cut at the surface border)."""
        tx, ty = key
        s = self.tile_size
        return Rect(tx * s, ty * s, s, s).intersect(self.bounds)

    def tile_keys(self, rect: Rect | None = None) -> Iterator[TileKey]:
        rect = self.bounds if rect is None else rect.intersect(self.bounds)
        return rect.tile_keys(self.tile_size)

    # -- tiles ----------------------------------------------------------------------------
    def tile(self, key: TileKey) -> np.ndarray | None:
        """The stored tile (tile_size x tile_size x channels) or None when it is empty."""
        return self.tiles.get(key)

    def _invalidate(self, key: TileKey) -> None:
        self._opaque.pop(key, None)
        self._content.pop(key, None)
        self._versions[key] = self._versions.get(key, 0) + 1

    def tile_version(self, key: TileKey) -> int:
        """A number that changes whenever the tile may have changed (for caches built on it)."""
        return self._versions.get(key, 0)

    def writable_tile(self, key: TileKey) -> np.ndarray:
        """The tile for in-place writing, created empty when missing."""
        self._invalidate(key)
        tile = self.tiles.get(key)
        if tile is None:
            s = self.tile_size
            tile = np.zeros((s, s, self.channels), np.uint8)
            self.tiles[key] = tile
        return tile

    def set_tile(self, key: TileKey, tile: np.ndarray | None) -> None:
        """Replace a tile wholesale (None removes it); used by undo."""
        self._invalidate(key)
        if tile is None:
            self.tiles.pop(key, None)
        else:
            self.tiles[key] = tile

    def is_tile_opaque(self, key: TileKey) -> bool:
        """True when every pixel of the tile inside the surface has full alpha (cached)."""
        cached = self._opaque.get(key)
        if cached is None:
            tile = self.tiles.get(key)
            r = self.tile_rect(key)
            cached = tile is not None and bool(tile[: r.h, : r.w, -1].min() == 255)
            self._opaque[key] = cached
        return cached

    def tile_content_box(self, key: TileKey) -> tuple[int, int, int, int] | None:
        """(y0, y1, x0, x1) of the tile's non-zero pixels (last channel), None when empty (cached)."""
        if key in self._content:
            return self._content[key]
        tile = self.tiles.get(key)
        box = None
        if tile is not None:
            alpha = tile[..., -1]
            rows = np.flatnonzero(alpha.any(axis=1))
            if rows.size:
                cols = np.flatnonzero(alpha[rows[0] : rows[-1] + 1].any(axis=0))
                box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        self._content[key] = box
        return box

    def drop_empty_tiles(self, keys: Iterator[TileKey] | None = None) -> None:
        """Free tiles that hold only zeros, so cleared areas cost nothing again."""
        for key in list(self.tiles if keys is None else keys):
            tile = self.tiles.get(key)
            if tile is not None and not tile.any():
                self.set_tile(key, None)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tiles.values())

    # -- regions --------------------------------------------------------------------------
    def read(self, rect: Rect) -> np.ndarray:
        """Copy of a region as an (h, w, channels) array; parts outside the surface are zero."""
        out = np.zeros((max(rect.h, 0), max(rect.w, 0), self.channels), np.uint8)
        s = self.tile_size
        for key in self.tile_keys(rect):
            tile = self.tiles.get(key)
            if tile is None:
                continue
            part = self.tile_rect(key).intersect(rect)
            ox, oy = key[0] * s, key[1] * s
            out[part.y - rect.y : part.bottom - rect.y, part.x - rect.x : part.right - rect.x] = tile[
                part.y - oy : part.bottom - oy, part.x - ox : part.right - ox
            ]
        return out

    def write(self, x: int, y: int, pixels: np.ndarray) -> Rect:
        """Write an (h, w, channels) array at (x, y), clipped to the surface. Returns what changed."""
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        rect = Rect(x, y, pixels.shape[1], pixels.shape[0]).intersect(self.bounds)
        s = self.tile_size
        for key in self.tile_keys(rect):
            part = self.tile_rect(key).intersect(rect)
            src = pixels[part.y - y : part.bottom - y, part.x - x : part.right - x]
            if key not in self.tiles and not src.any():
                continue
            ox, oy = key[0] * s, key[1] * s
            self.writable_tile(key)[part.y - oy : part.bottom - oy, part.x - ox : part.right - ox] = src
        return rect

    def fill(self, value: tuple[int, ...] | int, rect: Rect | None = None) -> Rect:
        """Fill a region (default: everything) with one value per channel."""
        rect = self.bounds if rect is None else rect.intersect(self.bounds)
        value_arr = np.asarray(value, np.uint8).reshape(-1)
        s = self.tile_size
        for key in self.tile_keys(rect):
            if not value_arr.any() and key not in self.tiles:
                continue
            part = self.tile_rect(key).intersect(rect)
            ox, oy = key[0] * s, key[1] * s
            self.writable_tile(key)[part.y - oy : part.bottom - oy, part.x - ox : part.right - ox] = value_arr
        if not value_arr.any():
            self.drop_empty_tiles(iter(list(self.tile_keys(rect))))
        return rect

    def clear(self) -> None:
        self.tiles.clear()
        self._opaque.clear()
        self._content.clear()
        self.epoch += 1

    def to_array(self) -> np.ndarray:
        return self.read(self.bounds)

    @classmethod
    def from_array(cls, pixels: np.ndarray, tile_size: int = TILE_SIZE) -> TiledSurface:
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        surface = cls(pixels.shape[1], pixels.shape[0], pixels.shape[2], tile_size)
        surface.write(0, 0, np.ascontiguousarray(pixels, dtype=np.uint8))
        return surface

    def copy(self) -> TiledSurface:
        other = TiledSurface(self.width, self.height, self.channels, self.tile_size)
        other.tiles = {k: t.copy() for k, t in self.tiles.items()}
        return other

    def content_bounds(self) -> Rect:
        """Bounding box of the pixels that are not zero (in the last channel)."""
        box = Rect(0, 0, 0, 0)
        for key, tile in self.tiles.items():
            r = self.tile_rect(key)
            alpha = tile[: r.h, : r.w, -1]
            rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
            if rows.size:
                x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
                box = box.union(Rect(r.x + x0, r.y + y0, x1 - x0 + 1, y1 - y0 + 1))
        return box
