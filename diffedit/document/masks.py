"""Selection and mask operations on uint8 masks (255 = selected), and their undoable document forms.

Grow and shrink use a Euclidean distance transform, so the cost does not depend on the radius.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from diffedit.document.document import Document
from diffedit.document.geometry import Rect
from diffedit.document.layers import MaskLayer


class SelectionMode(str, Enum):
    REPLACE = "replace"
    ADD = "add"
    SUBTRACT = "subtract"
    INTERSECT = "intersect"


def invert(mask: np.ndarray) -> np.ndarray:
    return 255 - mask


def grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """Every pixel within `radius` of a selected (>= 128) pixel becomes selected."""
    from scipy import ndimage

    if radius <= 0:
        return mask.copy()
    selected = mask >= 128
    if not selected.any():
        return mask.copy()
    dist = ndimage.distance_transform_edt(~selected)
    return np.where(dist <= radius, np.uint8(255), mask).astype(np.uint8)


def shrink(mask: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within `radius` of an unselected pixel, or of the image border, are deselected.

    The border counts as unselected (as in GIMP), so shrinking a full selection leaves a margin.
    """
    if radius <= 0:
        return mask.copy()
    pad = int(np.ceil(radius)) + 1
    padded = np.pad(invert(mask), pad, constant_values=255)
    return invert(grow(padded, radius)[pad:-pad, pad:-pad])


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """Soften the edge with a Gaussian whose sigma is half the radius."""
    from scipy import ndimage

    if radius <= 0:
        return mask.copy()
    soft = ndimage.gaussian_filter(mask.astype(np.float32), sigma=radius / 2, mode="nearest")
    return np.clip(np.rint(soft), 0, 255).astype(np.uint8)


def rectangle(width: int, height: int, rect: Rect) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    area = rect.intersect(Rect(0, 0, width, height))
    mask[area.slices()] = 255
    return mask


def ellipse(width: int, height: int, rect: Rect, antialias: bool = True) -> np.ndarray:
    """An ellipse inscribed in `rect`, with a one-pixel soft edge when antialiased."""
    mask = np.zeros((height, width), np.uint8)
    area = rect.intersect(Rect(0, 0, width, height))
    if area.is_empty():
        return mask
    rx, ry = rect.w / 2, rect.h / 2
    cx, cy = rect.x + rx, rect.y + ry
    ys, xs = np.ogrid[area.y : area.bottom, area.x : area.right]
    # Normalised radius scaled so that one unit is about one pixel at the edge.
    d = np.sqrt(((xs + 0.5 - cx) / rx) ** 2 + ((ys + 0.5 - cy) / ry) ** 2)
    edge = (1 - d) * min(rx, ry) + 0.5 if antialias else (d <= 1).astype(np.float32)
    mask[area.slices()] = np.clip(np.rint(np.clip(edge, 0, 1) * 255), 0, 255).astype(np.uint8)
    return mask


def combine(current: np.ndarray, shape: np.ndarray, mode: SelectionMode) -> np.ndarray:
    mode = SelectionMode(mode)
    if mode is SelectionMode.REPLACE:
        return shape
    if mode is SelectionMode.ADD:
        return np.maximum(current, shape)
    if mode is SelectionMode.SUBTRACT:
        return np.minimum(current, 255 - shape)
    return np.minimum(current, shape)


# -- document operations (each one undo step) --------------------------------------------------
def select_all(doc: Document) -> None:
    doc.set_selection(np.full((doc.height, doc.width), 255, np.uint8), "Select all")


def select_none(doc: Document) -> None:
    doc.set_selection(np.zeros((doc.height, doc.width), np.uint8), "Select none")


def select_rectangle(doc: Document, rect: Rect, mode: SelectionMode = SelectionMode.REPLACE) -> None:
    shape = rectangle(doc.width, doc.height, rect)
    doc.set_selection(combine(doc.selection_array(), shape, mode), "Rectangle selection")


def select_ellipse(doc: Document, rect: Rect, mode: SelectionMode = SelectionMode.REPLACE) -> None:
    shape = ellipse(doc.width, doc.height, rect)
    doc.set_selection(combine(doc.selection_array(), shape, mode), "Ellipse selection")


def transform_selection(doc: Document, operation: str, radius: float = 0) -> None:
    """Invert, grow, shrink or feather the selection."""
    current = doc.selection_array()
    doc.set_selection(_apply(operation, current, radius), f"{operation.capitalize()} selection")


def transform_mask(doc: Document, layer: MaskLayer, operation: str, radius: float = 0) -> None:
    """Invert, grow, shrink or feather a mask layer (the inpainting mask, say)."""
    current = layer.surface.to_array()[..., 0]
    doc.replace_pixels(layer, _apply(operation, current, radius), f"{operation.capitalize()} {layer.name}")


def _apply(operation: str, mask: np.ndarray, radius: float) -> np.ndarray:
    ops = {"invert": lambda m, r: invert(m), "grow": grow, "shrink": shrink, "feather": feather}
    if operation not in ops:
        raise ValueError(f"unknown mask operation {operation!r}; choose one of {sorted(ops)}")
    return ops[operation](mask, radius)
