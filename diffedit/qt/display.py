"""The images a canvas draws: the composite, and an overlay of tinted masks and the selection.

Both are QImages the size of the document, patched only in the rectangles the document reports as
changed, so a brush dab costs a composite of its own small area rather than of the whole image.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from diffedit.document.document import Document
from diffedit.document.geometry import Rect
from diffedit.document.layers import MaskLayer
from diffedit.qt.bindings import blit

MASK_ALPHA = 0.5  # how strongly a fully masked pixel is tinted
SELECTION_DIM = 0.45  # how much the unselected area is darkened while a selection exists
EMPTY = Rect(0, 0, 0, 0)


class DisplayImages:
    """Keeps the composite and overlay images of one document up to date, rectangle by rectangle."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.image = QImage(doc.width, doc.height, QImage.Format.Format_ARGB32_Premultiplied)
        self.overlay = QImage(doc.width, doc.height, QImage.Format.Format_ARGB32_Premultiplied)
        self.overlay_used = False  # nothing to draw: no visible mask, no selection
        self.masks_shown = True

    def refresh(self, image_rect: Rect, overlay_rect: Rect) -> Rect:
        """Recompute the given document rectangles; returns the area that changed."""
        doc = self.doc
        image_rect = image_rect.intersect(doc.bounds)
        if not image_rect.is_empty():
            blit(self.image, image_rect, doc.composite(image_rect))
        masks = [m for m in doc.mask_layers if m.visible and m.opacity > 0] if self.masks_shown else []
        used = bool(masks) or doc.has_selection
        if used != self.overlay_used:  # a first selection dims everywhere, not only the tiles it changed
            overlay_rect = doc.bounds
        self.overlay_used = used
        overlay_rect = overlay_rect.intersect(doc.bounds)
        if not overlay_rect.is_empty():
            blit(self.overlay, overlay_rect, self._overlay_pixels(overlay_rect, masks), premultiplied=True)
        return image_rect.union(overlay_rect)

    def _overlay_pixels(self, rect: Rect, masks: list[MaskLayer]) -> np.ndarray:
        """Premultiplied RGBA: each mask tinted with its colour, then the unselected area darkened."""
        acc = np.zeros((rect.h, rect.w, 4), np.float32)
        for mask in masks:
            local = rect.translated(-mask.offset[0], -mask.offset[1])
            a = mask.surface.read(local)[..., 0].astype(np.float32) * np.float32(MASK_ALPHA * mask.opacity / 255)
            tint = np.array([*mask.color, 255], np.float32) / 255
            acc = tint * a[..., None] + acc * (1 - a[..., None])
        if self.doc.has_selection:
            dim = (255 - self.doc.selection.read(rect)[..., 0].astype(np.float32)) * np.float32(SELECTION_DIM / 255)
            acc = np.array([0, 0, 0, 1], np.float32) * dim[..., None] + acc * (1 - dim[..., None])
        return np.rint(acc * 255).astype(np.uint8)
