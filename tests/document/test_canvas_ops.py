"""Canvas resize and image scaling: one undo step each, restoring the exact state."""

import numpy as np
import pytest

from diffedit.document import masks
from diffedit.document.document import Document
from diffedit.document.geometry import Rect


def _doc() -> Document:
    doc = Document(40, 30)
    bg = doc.add_layer(name="Background")
    pixels = np.zeros((30, 40, 4), np.uint8)
    pixels[..., 0] = np.arange(40, dtype=np.uint8)[None, :] * 5
    pixels[..., 3] = 255
    doc.replace_pixels(bg, pixels, "paint")
    mask = doc.ensure_inpaint_mask()
    doc.replace_pixels(mask, np.full((5, 6), 255, np.uint8), "mask", at=(2, 3))
    masks.select_rectangle(doc, Rect(10, 10, 5, 5))
    return doc


def _state(doc: Document) -> tuple:
    return (doc.width, doc.height, [(la.name, la.offset, la.surface.to_array().tobytes()) for la in doc.layers],
            doc.selection_array().tobytes(), doc.active)


def test_resize_canvas_moves_layers_selection_and_masks_in_one_step() -> None:
    doc = _doc()
    before, steps, sizes = _state(doc), doc.history.index, []
    doc.events.size_changed.connect(lambda w, h: sizes.append((w, h)))
    bg = doc.layer_named("Background")
    doc.resize_canvas(60, 50, 10, 5)
    assert (doc.width, doc.height) == (60, 50) and doc.history.index == steps + 1 and sizes == [(60, 50)]
    assert bg.offset == (10, 5) and bg.width == 40  # pixels kept, moved
    assert np.array_equal(doc.composite()[5:35, 10:50], bg.surface.to_array())
    assert doc.composite()[0, 0, 3] == 0
    sel = doc.selection_array()
    assert sel.shape == (50, 60) and sel[15:20, 20:25].all() and sel.sum() == 25 * 255
    mask = doc.inpaint_mask
    assert (mask.width, mask.height, mask.offset) == (60, 50, (0, 0))
    assert mask.surface.to_array()[8:13, 12:18].all()
    doc.history.undo()
    assert _state(doc) == before and sizes[-1] == (40, 30)
    doc.history.redo()
    assert bg.offset == (10, 5) and (doc.width, doc.height) == (60, 50)


def test_shrinking_the_canvas_hides_but_keeps_layer_pixels() -> None:
    doc = _doc()
    bg = doc.layer_named("Background")
    doc.resize_canvas(20, 20, -5, -5)
    assert bg.width == 40 and bg.offset == (-5, -5)
    assert np.array_equal(doc.composite(), bg.surface.to_array()[5:25, 5:25])
    doc.resize_canvas(40, 30, 5, 5)
    assert np.array_equal(doc.composite(), bg.surface.to_array())


def test_scale_image_by_factor_and_to_a_size_undoes_exactly() -> None:
    doc = _doc()
    before = _state(doc)
    doc.scale_image(2)
    assert (doc.width, doc.height) == (80, 60)
    assert all((la.width, la.height) == (80, 60) for la in doc.layers)
    assert doc.selection_array()[22:28, 22:28].all() and doc.history.steps[-1] == "Scale image to 80×60"
    doc.history.undo()
    assert _state(doc) == before
    doc.scale_image((20, 15), "nearest")
    assert doc.layer_named("Background").surface.to_array()[0, 3, 0] == 35  # nearest: pixel centres, column 7
    doc.history.undo()
    assert _state(doc) == before


def test_bad_sizes_are_refused() -> None:
    doc = _doc()
    with pytest.raises(ValueError):
        doc.resize_canvas(0, 10)
    with pytest.raises(ValueError):
        doc.scale_image(-1)
    with pytest.raises(ValueError):
        doc.scale_image(2, "cubic-ish")
    steps = doc.history.index
    doc.resize_canvas(40, 30)  # no change: no step
    assert doc.history.index == steps
