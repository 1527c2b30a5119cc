"""One entry point for files: open anything we read, save documents, export flattened images."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffedit.document.document import MAX_DOCUMENT_SIDE, Document, StackCommand
from diffedit.document.imagefiles import (
    DEFAULT_MAX_PIXELS,
    READ_EXTENSIONS,
    ImageFileError,
    export_format,
    png_text_chunks,
    read_image,
    write_image,
)
from diffedit.document.layers import RasterLayer
from diffedit.document.ora import load_ora, save_ora
from diffedit.document.tiles import TiledSurface

OPEN_EXTENSIONS = (".ora", *READ_EXTENSIONS)


@dataclass
class Opened:
    document: Document
    notes: list[str] = field(default_factory=list)


def open_document(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Opened:
    """Open an .ora document or a flat image (as a one-layer document)."""
    p = Path(path)
    if p.suffix.lower() == ".ora":
        loaded = load_ora(p, max_pixels)
        return Opened(loaded.document, loaded.notes)
    image = read_image(p, max_pixels)
    h, w = image.pixels.shape[:2]
    if max(w, h) > MAX_DOCUMENT_SIDE:  # Document() would raise a bare ValueError
        raise ImageFileError(f"'{p}' is {w}x{h}; DiffEdit documents are at most {MAX_DOCUMENT_SIDE} px per side")
    doc = Document(w, h, name=p.stem)
    layer = RasterLayer(name="Background", surface=TiledSurface.from_array(image.pixels))
    doc.layers.append(layer)
    doc._set_active_silently(layer)
    if "parameters" in image.info:
        doc.metadata["parameters"] = image.info["parameters"]
    doc.path = str(p)
    return Opened(doc, image.notes)


def save_document(doc: Document, path: str | os.PathLike[str] | None = None) -> Path:
    """Save as OpenRaster (atomically) and mark the history clean."""
    target = Path(path or doc.path or "")
    if target.suffix.lower() != ".ora":
        raise ImageFileError(f"documents are saved as OpenRaster; use a .ora file name, not '{target.name}'")
    saved = save_ora(doc, target)
    doc.path = str(saved)
    doc.name = saved.stem
    doc.history.mark_clean()
    return saved


def export_image(doc: Document, path: str | os.PathLike[str]) -> Path:
    """Export the flattened image; PNGs carry the layers' generation records as text chunks."""
    export_format(path)  # fail on a bad extension before doing any work
    pixels: np.ndarray = doc.composite()
    records = [
        {"layer": la.name, "record": la.record.to_json()} for la in doc.layers if la.record is not None and la.visible
    ]
    # `parameters` describes the image itself: the topmost shown raster layer's record, never a mask's
    top = next(
        (la.record for la in reversed(doc.raster_layers) if la.record is not None and la.visible and la.opacity > 0),
        None,
    )
    parameters = top.to_parameters_text() if top else str(doc.metadata.get("parameters", ""))
    return write_image(path, pixels, png_text_chunks(records, parameters))


def import_layer(
    doc: Document, path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[RasterLayer, list[str]]:
    """Add a flat image file as a new raster layer (top left, above the active layer) in one undo step.

    The canvas is not resized: a larger image is partly hidden (a note says so), as in other editors.
    """
    p = Path(path)
    image = read_image(p, max_pixels)
    layer = RasterLayer(name=doc.unique_name(p.stem), surface=TiledSurface.from_array(image.pixels))
    after = list(doc.layers)
    after.insert(doc.index_of(doc.active) + 1 if doc.active is not None else len(after), layer)
    doc.history.execute(StackCommand(doc, f"Import {layer.name}", after, layer))
    notes = list(image.notes)
    h, w = image.pixels.shape[:2]
    if w > doc.width or h > doc.height:
        notes.append(f"'{p.name}' is {w}×{h}, larger than the {doc.width}×{doc.height} canvas: parts are hidden")
    return layer, notes
