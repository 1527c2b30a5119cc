"""The brush engine: round dabs placed along a stroke, painted, erased or added to a mask.

A stroke keeps a coverage buffer and the layer's pixels from before the stroke, and recomputes the
touched area from both at each dab. So opacity caps the whole stroke (overlapping dabs do not build
past it, as in Krita and Photoshop), flow builds up within it, and the stroke is one undo step.

The dabs of one input point are laid into the coverage one after the other, then the pixels of their
joint area are computed, written and reported once: the result is the same as painting dab by dab
(a pixel's final value depends only on its final coverage), at a fraction of the per-dab cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from diffedit.document.document import Document
from diffedit.document.geometry import Rect
from diffedit.document.history import TileRecorder
from diffedit.document.layers import Layer, MaskLayer, RasterLayer

RUN_MAX_AREA = 256 * 256  # the dabs painted in one pass span at most this box area...
RUN_DABS = 4  # ...or this many times one dab's box, for big brushes


class BrushMode(str, Enum):
    PAINT = "paint"
    ERASE = "erase"
    MASK_ADD = "mask-add"
    MASK_SUBTRACT = "mask-subtract"


@dataclass
class BrushSettings:
    """Size is the diameter in pixels; spacing is a fraction of the size between dabs."""

    size: float = 20.0
    hardness: float = 0.8
    opacity: float = 1.0
    flow: float = 1.0
    spacing: float = 0.1
    pressure_size: bool = True
    pressure_opacity: bool = False

    def __post_init__(self) -> None:
        if not 0.5 <= self.size <= 5000:
            raise ValueError(f"brush size must be 0.5..5000 px, got {self.size}")
        for name in ("hardness", "opacity", "flow"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"brush {name} must be between 0 and 1, got {getattr(self, name)}")
        if not 0.01 <= self.spacing <= 10:
            raise ValueError(f"brush spacing must be 0.01..10 times the size, got {self.spacing}")


def dab_mask(cx: float, cy: float, diameter: float, hardness: float) -> tuple[Rect, np.ndarray]:
    """Coverage (0..1 float32) of a round dab centred at (cx, cy), and the rectangle it covers.

    Full inside hardness * radius, then a smooth fall-off to zero at the radius; even a hard brush
    keeps a one-pixel ramp so its edge is antialiased.
    """
    radius = max(diameter / 2, 0.5)
    rect = Rect.around(cx, cy, radius)
    xs = np.arange(rect.x, rect.right) + (0.5 - cx)  # float64, as the distances always were
    ys = (np.arange(rect.y, rect.bottom) + (0.5 - cy))[:, None]
    dist = np.sqrt(xs * xs + ys * ys, dtype=np.float32)
    inner = min(radius * hardness, radius - 1.0)
    t = np.clip((radius - dist) / max(radius - inner, 1e-6), 0.0, 1.0)
    coverage = (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep
    return rect, coverage


class Stroke:
    """One brush stroke on one layer. Feed points with `add_point`; `end` makes it an undo step."""

    def __init__(
        self,
        doc: Document,
        layer: Layer,
        settings: BrushSettings,
        mode: BrushMode = BrushMode.PAINT,
        color: tuple[int, int, int, int] = (0, 0, 0, 255),
    ) -> None:
        layer.ensure_editable()
        mode = BrushMode(mode)
        if isinstance(layer, MaskLayer) and mode not in (BrushMode.MASK_ADD, BrushMode.MASK_SUBTRACT):
            raise ValueError(f"layer {layer.name!r} is a mask: paint it with mask-add or mask-subtract")
        if isinstance(layer, RasterLayer) and mode not in (BrushMode.PAINT, BrushMode.ERASE):
            raise ValueError(f"layer {layer.name!r} is a raster layer: use paint or erase")
        self.doc, self.layer, self.settings, self.mode = doc, layer, settings, mode
        self.color = np.asarray(color, np.float32)
        self.recorder = TileRecorder(layer.surface)
        self._coverage: dict[tuple[int, int], np.ndarray] = {}
        self._last: tuple[float, float, float] | None = None
        self._travel = 0.0  # distance since the last dab
        self.dirty = Rect(0, 0, 0, 0)  # document rectangle changed by the stroke so far
        self._selection = doc.selection if doc.has_selection else None

    # -- input ---------------------------------------------------------------------------------
    def add_point(self, x: float, y: float, pressure: float = 1.0) -> Rect:
        """Add an input point (document coordinates); dabs fill the gap from the previous one.

        Returns the document rectangle that changed, for a partial repaint.
        """
        pressure = min(max(pressure, 0.0), 1.0)
        dabs: list[tuple[float, float, float]] = []
        if self._last is None:
            dabs.append((x, y, pressure))
        else:
            lx, ly, lp = self._last
            length = math.hypot(x - lx, y - ly)
            pos = 0.0
            while True:
                step = self._spacing(lp + (pressure - lp) * (pos / length if length else 1))
                remaining = step - self._travel
                if pos + remaining > length:
                    self._travel += length - pos
                    break
                pos += remaining
                self._travel = 0.0
                f = pos / length if length else 1.0
                dabs.append((lx + (x - lx) * f, ly + (y - ly) * f, lp + (pressure - lp) * f))
        self._last = (x, y, pressure)
        changed = Rect(0, 0, 0, 0)
        for run in self._compact_runs(dabs):
            changed = changed.union(self._paint_dabs(run))
        self.dirty = self.dirty.union(changed)
        return changed

    @property
    def text(self) -> str:
        return f"Brush stroke on {self.layer.name}"

    def end(self) -> bool:
        """Finish the stroke and record it as one undo step; False when it changed nothing.

        Every dab was reported as it was painted, so recording the step reports nothing more (a
        report of the touched tiles would recomposite all of them when the mouse is released).
        """
        command = self.recorder.command(self.text, self.doc._notify_for(self.layer), reported=True)
        if command is not None:
            self.doc.history.execute(command)
        self._coverage.clear()
        return command is not None

    def cancel(self) -> None:
        """Drop the stroke and restore the layer."""
        for key, tile in self.recorder.before.items():
            self.layer.surface.set_tile(key, tile)
        self.doc.events.pixels_changed.emit(self.layer, self.dirty)
        self._coverage.clear()

    # -- dabs ----------------------------------------------------------------------------------
    def _size(self, pressure: float) -> float:
        return max(self.settings.size * (pressure if self.settings.pressure_size else 1.0), 0.5)

    def _spacing(self, pressure: float) -> float:
        return max(self._size(pressure) * self.settings.spacing, 0.5)

    def _compact_runs(self, points: list[tuple[float, float, float]]) -> list[list[tuple[float, float, float]]]:
        """Split a point's dabs into runs of consecutive dabs whose joint box stays small.

        The dabs of a mouse move form one run; a jump across much of the image in one event (a fast
        flick at a low zoom) becomes several, so no run computes a large box that its dabs barely cover.
        """
        runs: list[list[tuple[float, float, float]]] = []
        box = Rect(0, 0, 0, 0)
        for point in points:
            rect = Rect.around(point[0], point[1], max(self._size(point[2]) / 2, 0.5))
            joint = box.union(rect)
            if not runs or joint.w * joint.h > max(RUN_MAX_AREA, RUN_DABS * rect.w * rect.h):
                runs.append([])
                joint = rect
            runs[-1].append(point)
            box = joint
        return runs

    def _paint_dabs(self, points: list[tuple[float, float, float]]) -> Rect:
        """Lay dabs at (x, y, pressure) document points, in order; returns the document area changed.

        The coverage builds up dab by dab; the pixels of the dabs' joint area are then computed once
        from the pixels before the stroke, and written only where a dab's square lay (elsewhere in the
        joint area the layer keeps what it holds), exactly as painting each dab in turn would.
        """
        ox, oy = self.layer.offset
        bounds = self.layer.surface.bounds
        flow = self.settings.flow
        dabs: list[tuple[Rect, np.ndarray, float]] = []
        area = Rect(0, 0, 0, 0)
        for x, y, pressure in points:
            rect, dab = dab_mask(x - ox, y - oy, self._size(pressure), self.settings.hardness)
            part = rect.intersect(bounds)
            if part.is_empty():
                continue
            dab = dab[part.y - rect.y : part.bottom - rect.y, part.x - rect.x : part.right - rect.x]
            dabs.append((part, dab, flow * (pressure if self.settings.pressure_opacity else 1.0)))
            area = area.union(part)
        if not dabs:
            return Rect(0, 0, 0, 0)
        coverage = self._read_coverage(area)
        laid = np.zeros((area.h, area.w), np.bool_)  # where a dab's square lay
        keys: set[tuple[int, int]] = set()
        for part, dab, dab_flow in dabs:
            sl = (slice(part.y - area.y, part.bottom - area.y), slice(part.x - area.x, part.right - area.x))
            cov = coverage[sl]
            cov += dab * dab_flow * (1 - cov)
            laid[sl] = True
            self.recorder.touch(part)
            keys.update(self.layer.surface.tile_keys(part))
        self._write_coverage(area, coverage, keys)
        strength = coverage * self.settings.opacity
        if self._selection is not None:
            strength = strength * (self._selection.read(area.translated(ox, oy))[..., 0] * np.float32(1 / 255))
        pixels = self._apply(self._read_before(area), strength)
        if not laid.all():
            pixels = np.where(laid[..., None], pixels, self.layer.surface.read(area))
        for key in keys:
            part = self.layer.surface.tile_rect(key).intersect(area)
            self.layer.surface.write(
                part.x, part.y, pixels[part.y - area.y : part.bottom - area.y, part.x - area.x : part.right - area.x]
            )
        changed = area.translated(ox, oy)
        self.doc.events.pixels_changed.emit(self.layer, changed)
        return changed

    def _apply(self, before: np.ndarray, strength: np.ndarray) -> np.ndarray:
        """New pixels from the pixels before the stroke and the stroke's strength (0..1)."""
        b = before.astype(np.float32)
        if self.mode is BrushMode.MASK_ADD:
            out = b[..., 0] + (255 - b[..., 0]) * strength
            return np.rint(out)[..., None].astype(np.uint8)
        if self.mode is BrushMode.MASK_SUBTRACT:
            return np.rint(b[..., 0] * (1 - strength))[..., None].astype(np.uint8)
        if self.mode is BrushMode.ERASE:
            b[..., 3] *= 1 - strength
            return np.rint(b).astype(np.uint8)
        src_a = strength * (self.color[3] / 255)
        dst_a = b[..., 3] / 255
        out_a = src_a + dst_a * (1 - src_a)
        with np.errstate(divide="ignore", invalid="ignore"):
            rgb = (self.color[:3] * src_a[..., None] + b[..., :3] * (dst_a * (1 - src_a))[..., None]) / out_a[..., None]
        out = np.empty_like(b)
        out[..., :3] = np.where(out_a[..., None] > 0, rgb, 0)
        out[..., 3] = out_a * 255
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def _read_before(self, area: Rect) -> np.ndarray:
        surface = self.layer.surface
        out = np.zeros((area.h, area.w, surface.channels), np.uint8)
        self._blit_tiles(area, out, lambda key: self.recorder.before.get(key))
        return out

    def _read_coverage(self, area: Rect) -> np.ndarray:
        out = np.zeros((area.h, area.w), np.float32)
        self._blit_tiles(area, out, self._coverage.get)
        return out

    def _write_coverage(self, area: Rect, values: np.ndarray, keys: Iterable[tuple[int, int]]) -> None:
        """Store coverage values of `area` into the given tiles of the coverage buffer."""
        s = self.layer.surface.tile_size
        for key in keys:
            tile = self._coverage.setdefault(key, np.zeros((s, s), np.float32))
            part = self.layer.surface.tile_rect(key).intersect(area)
            ox, oy = key[0] * s, key[1] * s
            tile[part.y - oy : part.bottom - oy, part.x - ox : part.right - ox] = values[
                part.y - area.y : part.bottom - area.y, part.x - area.x : part.right - area.x
            ]

    def _blit_tiles(self, area: Rect, out: np.ndarray, tile_of) -> None:  # type: ignore[no-untyped-def]
        s = self.layer.surface.tile_size
        for key in self.layer.surface.tile_keys(area):
            tile = tile_of(key)
            if tile is None:
                continue
            part = self.layer.surface.tile_rect(key).intersect(area)
            out[part.y - area.y : part.bottom - area.y, part.x - area.x : part.right - area.x] = tile[
                part.y - key[1] * s : part.bottom - key[1] * s, part.x - key[0] * s : part.right - key[0] * s
            ]


def paint_stroke(
    doc: Document,
    layer: Layer,
    points: list[tuple[float, float] | tuple[float, float, float]],
    settings: BrushSettings | None = None,
    mode: BrushMode = BrushMode.PAINT,
    color: tuple[int, int, int, int] = (0, 0, 0, 255),
) -> Rect:
    """Paint a whole stroke through the given points as one undo step; returns what changed."""
    stroke = Stroke(doc, layer, settings or BrushSettings(), mode, color)
    for point in points:
        stroke.add_point(*point)
    stroke.end()
    return stroke.dirty
