"""Integer rectangles: the unit of dirty regions, selections and tile bookkeeping."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rect:
    """A half-open pixel rectangle [x, x+w) x [y, y+h). Empty when w or h is not positive."""

    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def is_empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    def intersect(self, other: Rect) -> Rect:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def union(self, other: Rect) -> Rect:
        if self.is_empty():
            return other
        if other.is_empty():
            return self
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.right, other.right), max(self.bottom, other.bottom)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def translated(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.w, self.h)

    def slices(self) -> tuple[slice, slice]:
        """Numpy (row, column) slices of this rectangle."""
        return slice(self.y, self.bottom), slice(self.x, self.right)

    def tile_keys(self, tile_size: int) -> Iterator[tuple[int, int]]:
        """Keys (tx, ty) of the tiles this rectangle touches."""
        if self.is_empty():
            return
        for ty in range(self.y // tile_size, (self.bottom - 1) // tile_size + 1):
            for tx in range(self.x // tile_size, (self.right - 1) // tile_size + 1):
                yield tx, ty

    @staticmethod
    def around(cx: float, cy: float, radius: float) -> Rect:
        """The smallest integer rectangle holding a disc of this radius."""
        import math

        x0, y0 = math.floor(cx - radius), math.floor(cy - radius)
        x1, y1 = math.ceil(cx + radius) + 1, math.ceil(cy + radius) + 1
        return Rect(x0, y0, x1 - x0, y1 - y0)
