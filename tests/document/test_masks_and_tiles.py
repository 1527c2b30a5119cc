"""Selections and masks (invert, grow, shrink, feather, shapes) and sparse tile storage."""

import numpy as np
import pytest

from diffedit.document import Document, Rect, masks
from diffedit.document.masks import SelectionMode
from diffedit.document.tiles import TiledSurface


def test_grow_and_shrink_by_radius() -> None:
    m = masks.rectangle(100, 100, Rect(40, 40, 20, 20))
    grown = masks.grow(m, 5)
    assert grown[35, 50] == 255 and grown[34, 50] == 0 and grown[40, 40] == 255
    shrunk = masks.shrink(m, 5)
    assert shrunk[45, 50] == 255 and shrunk[44, 50] == 0
    assert (masks.grow(m, 0) == m).all()


def test_feather_softens_the_edge_only() -> None:
    m = masks.rectangle(100, 100, Rect(20, 20, 60, 60))
    soft = masks.feather(m, 6)
    assert soft[50, 50] == 255 and soft[5, 5] == 0
    assert 50 < soft[50, 20] < 205


def test_invert_and_ellipse_and_combine() -> None:
    e = masks.ellipse(100, 100, Rect(0, 0, 100, 100))
    assert e[50, 50] == 255 and e[0, 0] == 0 and 0 < e[50, 0] <= 255
    inv = masks.invert(e)
    assert inv[0, 0] == 255 and inv[50, 50] == 0
    a = masks.rectangle(10, 10, Rect(0, 0, 5, 10))
    b = masks.rectangle(10, 10, Rect(3, 0, 5, 10))
    assert (masks.combine(a, b, SelectionMode.ADD)[:, :8] == 255).all()
    assert (masks.combine(a, b, SelectionMode.INTERSECT)[:, 3:5] == 255).all()
    assert masks.combine(a, b, SelectionMode.INTERSECT)[:, :3].sum() == 0
    assert (masks.combine(a, b, SelectionMode.SUBTRACT)[:, :3] == 255).all()
    assert masks.combine(a, b, SelectionMode.SUBTRACT)[:, 3:].sum() == 0


def test_document_selection_operations_are_undoable() -> None:
    doc = Document(120, 100)
    masks.select_all(doc)
    assert doc.has_selection and (doc.selection_array() == 255).all()
    masks.select_none(doc)
    assert not doc.has_selection
    masks.select_ellipse(doc, Rect(10, 10, 50, 50))
    masks.select_rectangle(doc, Rect(80, 10, 20, 20), SelectionMode.ADD)
    before = doc.selection_array()
    masks.transform_selection(doc, "grow", 4)
    masks.transform_selection(doc, "invert")
    doc.history.undo()
    doc.history.undo()
    assert np.array_equal(doc.selection_array(), before)
    with pytest.raises(ValueError, match="unknown mask operation"):
        masks.transform_selection(doc, "explode")


def test_mask_layer_operations() -> None:
    doc = Document(64, 64)
    mask = doc.ensure_inpaint_mask()
    doc.replace_pixels(mask, masks.rectangle(64, 64, Rect(20, 20, 10, 10)), "paint")
    masks.transform_mask(doc, mask, "grow", 3)
    assert mask.surface.to_array()[18, 25, 0] == 255


def test_tiles_are_created_on_write_and_read_back_exactly() -> None:
    s = TiledSurface(600, 500, 4)
    assert s.nbytes == 0 and s.read(Rect(0, 0, 600, 500)).sum() == 0
    px = np.random.default_rng(0).integers(0, 256, (100, 300, 4), dtype=np.uint8)
    s.write(200, 240, px)
    assert np.array_equal(s.read(Rect(200, 240, 300, 100)), px)
    assert set(s.tiles) == {(0, 0), (1, 0), (0, 1), (1, 1)}
    assert np.array_equal(s.read(Rect(-10, -10, 5, 5)), np.zeros((5, 5, 4), np.uint8))
    s.fill((0, 0, 0, 0))
    assert s.nbytes == 0
    assert TiledSurface.from_array(px).content_bounds() == Rect(0, 0, 300, 100)


def test_writes_are_clipped_to_the_surface() -> None:
    s = TiledSurface(100, 100, 1)
    changed = s.write(90, 90, np.full((20, 20, 1), 7, np.uint8))
    assert changed == Rect(90, 90, 10, 10)
    assert s.to_array()[95, 95, 0] == 7


def test_opaque_cache_is_invalidated_by_writes() -> None:
    s = TiledSurface(256, 256, 4)
    s.fill((1, 2, 3, 255))
    assert s.is_tile_opaque((0, 0))
    s.write(0, 0, np.zeros((1, 1, 4), np.uint8))
    assert not s.is_tile_opaque((0, 0))
