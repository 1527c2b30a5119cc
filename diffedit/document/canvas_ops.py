"""Changing the document's size: canvas resize (layers keep their pixels) and image scaling.

Both are one `CanvasCommand` that swaps the document size, the selection surface and each layer's
surface and offset, so undo restores exactly what was there and layers keep their identity (panels
and the active layer stay valid).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from diffedit.document.history import Command
from diffedit.document.layers import Layer, MaskLayer
from diffedit.document.tiles import TiledSurface

if TYPE_CHECKING:
    from diffedit.document.document import Document

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
LayerState = tuple[Layer, TiledSurface, tuple[int, int]]


class CanvasCommand(Command):
    """Swaps document size, selection and per-layer (surface, offset) between two states.

    Only the 'other' state is stored (history is linear), as in `TilePatchCommand`.
    """

    def __init__(self, doc: Document, text: str, size: tuple[int, int], selection: TiledSurface,
                 layers: list[LayerState]) -> None:
        self.doc, self.text = doc, text
        self._size, self._selection, self._layers = size, selection, layers

    def _swap(self) -> None:
        doc = self.doc
        (w, h), self._size = self._size, (doc.width, doc.height)
        doc.width, doc.height = w, h
        doc.selection, self._selection = self._selection, doc.selection
        for i, (layer, surface, offset) in enumerate(self._layers):
            self._layers[i] = (layer, layer.surface, layer.offset)
            layer.surface, layer.offset = surface, offset
        doc.projection.clear()
        doc.events.size_changed.emit(doc.width, doc.height)
        doc.events.layers_changed.emit()
        doc.events.pixels_changed.emit(None, doc.bounds)
        doc.events.selection_changed.emit(doc.bounds)

    redo = _swap
    undo = _swap

    @property
    def nbytes(self) -> int:
        surfaces = {id(s): s for _, s, _ in self._layers}
        surfaces[id(self._selection)] = self._selection
        return sum(s.nbytes for s in surfaces.values())


def _check_size(width: int, height: int) -> None:
    from diffedit.document.document import MAX_DOCUMENT_SIDE

    if not (0 < width <= MAX_DOCUMENT_SIDE and 0 < height <= MAX_DOCUMENT_SIDE):
        raise ValueError(f"document size must be 1..{MAX_DOCUMENT_SIDE} px per side, got {width}x{height}")


def _moved(surface: TiledSurface, width: int, height: int, dx: int, dy: int) -> TiledSurface:
    """A width x height copy of `surface` with its content shifted by (dx, dy); outside parts are cut."""
    out = TiledSurface(width, height, surface.channels)
    if surface.tiles:
        pixels = surface.to_array()
        x0, y0 = max(0, -dx), max(0, -dy)
        x1, y1 = min(surface.width, width - dx), min(surface.height, height - dy)
        if x1 > x0 and y1 > y0:
            out.write(x0 + dx, y0 + dy, np.ascontiguousarray(pixels[y0:y1, x0:x1]))
    return out


def resize_canvas(doc: Document, width: int, height: int, offset_x: int = 0, offset_y: int = 0) -> None:
    """Make the canvas width x height, moving every layer (and the selection) by (offset_x, offset_y).

    Raster layers keep all their pixels (parts outside the canvas are hidden, not cut). Document-sized
    masks at the origin (the inpainting mask) are re-made document-sized so they stay paintable
    everywhere; other masks just move.
    """
    _check_size(width, height)
    if (width, height, offset_x, offset_y) == (doc.width, doc.height, 0, 0):
        return
    states: list[LayerState] = []
    for la in doc.layers:
        ox, oy = la.offset
        if isinstance(la, MaskLayer) and la.offset == (0, 0) and (la.width, la.height) == (doc.width, doc.height):
            states.append((la, _moved(la.surface, width, height, offset_x, offset_y), (0, 0)))
        else:
            states.append((la, la.surface, (ox + offset_x, oy + offset_y)))
    selection = _moved(doc.selection, width, height, offset_x, offset_y)
    text = f"Resize canvas to {width}×{height}"
    doc.history.execute(CanvasCommand(doc, text, (width, height), selection, states))


def _scaled(surface: TiledSurface, width: int, height: int, resample: Image.Resampling) -> TiledSurface:
    out = TiledSurface(width, height, surface.channels)
    if surface.tiles:
        pixels = surface.to_array()
        # Pillow premultiplies RGBA while resampling, so transparent pixels do not bleed colour.
        image = Image.fromarray(pixels[..., 0] if surface.channels == 1 else pixels,
                                "L" if surface.channels == 1 else "RGBA")
        array = np.asarray(image.resize((width, height), resample))
        out.write(0, 0, np.ascontiguousarray(array.reshape(height, width, surface.channels)))
    return out


def scale_image(doc: Document, size: float | tuple[int, int], resample: str = "lanczos") -> None:
    """Scale the document and every layer (and the selection) by a factor or to (width, height)."""
    if resample not in RESAMPLE:
        raise ValueError(f"unknown resampling {resample!r}; choose one of {sorted(RESAMPLE)}")
    if isinstance(size, tuple | list):
        width, height = int(size[0]), int(size[1])
    else:
        if size <= 0:
            raise ValueError(f"the scale factor must be positive, got {size}")
        width, height = max(1, round(doc.width * size)), max(1, round(doc.height * size))
    _check_size(width, height)
    if (width, height) == (doc.width, doc.height):
        return
    sx, sy = width / doc.width, height / doc.height
    mode = RESAMPLE[resample]
    states: list[LayerState] = []
    for la in doc.layers:
        w, h = max(1, round(la.width * sx)), max(1, round(la.height * sy))
        states.append((la, _scaled(la.surface, w, h, mode), (round(la.offset[0] * sx), round(la.offset[1] * sy))))
    selection = _scaled(doc.selection, width, height, mode)
    text = f"Scale image to {width}×{height}"
    doc.history.execute(CanvasCommand(doc, text, (width, height), selection, states))
