"""What the task panel does with a run: its result as one undoable change, its previews as a canvas
overlay, and its progress as time left.

A result only ever reaches the document here, as one undo step (a canvas resize or scale for
outpainting and super-resolution, merged with the StackCommand that adds the layers), so one undo
removes all of it and a cancelled or failed run, which never gets here, leaves the document as it was.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtGui import QImage

from diffedit.document.document import Document, StackCommand
from diffedit.document.geometry import Rect
from diffedit.document.layers import Layer, MaskLayer, RasterLayer
from diffedit.document.tiles import TiledSurface
from diffedit.qt.bindings import rgba_to_qimage
from diffedit.tasks.base import TaskResult, TaskSpec


def _raster_index(doc: Document) -> int:
    """Above the active raster layer, else above the topmost raster layer (masks stay on top)."""
    if isinstance(doc.active, RasterLayer):
        return doc.index_of(doc.active) + 1
    rasters = [i for i, la in enumerate(doc.layers) if isinstance(la, RasterLayer)]
    return rasters[-1] + 1 if rasters else 0


def _mask_layer(doc: Document, result: TaskResult, spec: TaskSpec) -> MaskLayer:
    """A new mask; it becomes the inpainting mask (document-sized) when the document has none yet."""
    assert result.mask is not None
    mask = np.ascontiguousarray(result.mask, np.uint8)
    if doc.inpaint_mask is None:
        full = np.zeros((doc.height, doc.width), np.uint8)
        area = Rect(*result.offset, mask.shape[1], mask.shape[0]).intersect(doc.bounds)
        if not area.is_empty():
            local = area.translated(-result.offset[0], -result.offset[1])
            full[area.slices()] = mask[local.slices()]
        return MaskLayer(name=doc.unique_name("Inpaint mask"), surface=TiledSurface.from_array(full),
                         role="inpaint", record=result.record)
    name = doc.unique_name(result.name or f"{spec.label} mask")
    return MaskLayer(name=name, surface=TiledSurface.from_array(mask), offset=result.offset, record=result.record)


def _fit_canvas(doc: Document, result: TaskResult) -> tuple[TaskResult, str]:
    """Resize (outpaint) or scale (super-resolve) the canvas for a result, as its own history step.

    Returns the result with its offset moved into the new canvas's coordinates, and a note ('' when
    the canvas was left alone). Outpainting's offset is where the new canvas starts relative to the
    old one, so the old image moves to -offset and the result lands at the origin.
    """
    if result.canvas_size is None or tuple(result.canvas_size) == (doc.width, doc.height):
        return result, ""
    w, h = (int(v) for v in result.canvas_size)
    old = f"{doc.width}×{doc.height}"
    if result.scale != 1:
        doc.scale_image((w, h))
        ox, oy = result.offset
        scaled = (ox * result.scale, oy * result.scale)
        return replace(result, offset=scaled), f"The image was scaled from {old} to {w}×{h}."
    dx, dy = -result.offset[0], -result.offset[1]
    doc.resize_canvas(w, h, dx, dy)
    return replace(result, offset=(0, 0)), f"The canvas was resized from {old} to {w}×{h}."


def apply_result(doc: Document, spec: TaskSpec, result: TaskResult) -> tuple[list[Layer], list[str]]:
    """Add the result's layer(s), each carrying the run's record, in ONE undo step; returns them and notes."""
    if result.image is None and result.mask is None:
        return [], [f"{spec.label} finished without an image or a mask: nothing was added.", *result.notes]
    if result.image is not None:
        image = np.ascontiguousarray(result.image, np.uint8)
        if image.ndim != 3 or image.shape[2] != 4:
            raise ValueError(f"the task returned an image of shape {image.shape}; expected (h, w, 4) RGBA")
    steps = doc.history.index
    result, size_note = _fit_canvas(doc, result)
    resized = doc.history.index - steps
    added: list[Layer] = []
    after = list(doc.layers)
    active = doc.active
    if result.image is not None:
        layer = RasterLayer(name=doc.unique_name(result.name or spec.label), surface=TiledSurface.from_array(image),
                            offset=tuple(result.offset), record=result.record)  # type: ignore[arg-type]
        after.insert(_raster_index(doc), layer)
        active = layer
        added.append(layer)
    if result.mask is not None:
        mask = _mask_layer(doc, result, spec)
        after.append(mask)
        added.append(mask)
    names = " and ".join(la.name for la in added)
    text = f"{spec.label}: add {names}"
    doc.history.execute(StackCommand(doc, text, after, active))
    doc.history.merge_last(1 + resized, text)
    return added, [n for n in (size_note, *result.notes) if n]


def preview_overlay(preview: np.ndarray, doc: Document, mask: np.ndarray | None,
                    margin: int = 0) -> tuple[QImage, Rect]:
    """The preview as an image and the document rectangle it covers.

    The runner does not say where a preview belongs yet, so: a document-sized preview covers the
    canvas; with a mask it is the crop around the mask (its bounding box grown by `margin`, as the
    inpaint task crops) and only the masked part is shown; otherwise it is stretched over the canvas.
    """
    ph, pw = preview.shape[:2]
    pixels = np.array(preview, np.uint8)
    if mask is not None and mask.shape == (doc.height, doc.width) and (mask >= 128).any():
        if (pw, ph) == (doc.width, doc.height):
            x0 = y0 = 0
        else:
            ys, xs = np.nonzero(mask >= 128)
            x0, y0 = max(0, int(xs.min()) - margin), max(0, int(ys.min()) - margin)
        rect = Rect(x0, y0, pw, ph).intersect(doc.bounds)
        pixels = pixels[: rect.h, : rect.w]
        pixels[..., 3] = np.minimum(pixels[..., 3], mask[rect.slices()])
        return rgba_to_qimage(pixels), rect
    return rgba_to_qimage(pixels), doc.bounds


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class EtaClock:
    """Time left from the pace since the first reported step (the first one includes loading the model)."""

    def __init__(self) -> None:
        self.first: tuple[int, float] | None = None

    def text(self, step: int, total: int, elapsed: float) -> str:
        if self.first is None or step < self.first[0]:
            self.first = (step, elapsed)
        first_step, first_time = self.first
        if step <= first_step:  # one step's time still includes loading the model: no honest estimate yet
            return f"estimating the time left… · {format_seconds(elapsed)} elapsed"
        per_step = (elapsed - first_time) / (step - first_step)
        left = per_step * max(total - step, 0)
        return f"about {format_seconds(left)} left · {format_seconds(elapsed)} elapsed"
