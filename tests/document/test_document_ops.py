"""Layer operations, each one undo step that restores the exact state."""

import numpy as np
import pytest

from diffedit.document import BlendMode, Document, LayerLockedError, MaskLayer, RasterLayer, Rect, masks


def _doc_with_layers() -> Document:
    doc = Document(320, 280)
    a = doc.add_layer(name="a")
    doc.fill_layer(a, (200, 10, 10, 255))
    b = doc.add_layer(name="b")
    masks.select_rectangle(doc, Rect(20, 30, 100, 60))
    doc.fill_layer(b, (10, 10, 200, 128))
    masks.select_none(doc)
    return doc


def _snapshot(doc: Document) -> list:
    return [
        (la.uid, la.name, la.opacity, la.visible, la.locked, la.offset, la.surface.to_array().tobytes())
        for la in doc.layers
    ] + [doc.selection_array().tobytes(), doc.active.uid if doc.active else None]


def test_add_delete_duplicate_rename_reorder_and_their_undo() -> None:
    doc = _doc_with_layers()
    start = _snapshot(doc)
    copy = doc.duplicate_layer(doc.layers[1])
    assert copy.name == "b copy" and doc.index_of(copy) == 2
    assert np.array_equal(copy.surface.to_array(), doc.layers[1].surface.to_array())
    doc.rename_layer(copy, "renamed")
    doc.move_layer(copy, 0)
    assert doc.layers[0] is copy
    doc.delete_layer(doc.layer_named("a"))
    assert [la.name for la in doc.layers] == ["renamed", "b"]
    for _ in range(4):
        doc.history.undo()
    assert _snapshot(doc) == start
    for _ in range(4):
        doc.history.redo()
    assert [la.name for la in doc.layers] == ["renamed", "b"]


def test_merge_down_composites_the_pair_and_undo_restores_both() -> None:
    doc = _doc_with_layers()
    doc.set_property(doc.layers[1], "blend_mode", BlendMode.MULTIPLY)
    before = doc.composite()
    start = _snapshot(doc)
    merged = doc.merge_down(doc.layers[1])
    assert len(doc.layers) == 1 and doc.layers[0] is merged
    assert np.abs(doc.composite().astype(int) - before).max() <= 1
    doc.history.undo()
    assert _snapshot(doc) == start


def test_merge_down_without_a_layer_below_says_so() -> None:
    doc = _doc_with_layers()
    with pytest.raises(ValueError, match="no raster layer below"):
        doc.merge_down(doc.layers[0])


def test_flatten_keeps_the_composite_and_the_masks() -> None:
    doc = _doc_with_layers()
    mask = doc.ensure_inpaint_mask()
    before = doc.composite()
    flat = doc.flatten()
    assert doc.layers == [flat, mask]
    assert np.array_equal(doc.composite(), before)


def test_fill_and_clear_respect_the_selection() -> None:
    doc = Document(100, 80)
    layer = doc.add_layer()
    masks.select_rectangle(doc, Rect(10, 10, 20, 20))
    doc.fill_layer(layer, (1, 2, 3, 255))
    px = layer.surface.to_array()
    assert (px[10:30, 10:30] == [1, 2, 3, 255]).all()
    assert px[:10].sum() == 0 and px[30:].sum() == 0
    masks.select_rectangle(doc, Rect(10, 10, 5, 20))
    doc.clear_layer(layer)
    px = layer.surface.to_array()
    assert px[10:30, 10:15, 3].sum() == 0 and (px[10:30, 15:30, 3] == 255).all()


def test_layer_from_selection_and_selection_from_alpha() -> None:
    doc = _doc_with_layers()
    masks.select_rectangle(doc, Rect(0, 0, 50, 50))
    new = doc.layer_from_selection(doc.layer_named("a"))
    px = new.surface.to_array()
    assert (px[:50, :50, 3] == 255).all() and px[50:, :, 3].sum() == 0 and px[:, 50:, 3].sum() == 0
    doc.selection_from_alpha(doc.layer_named("b"))
    sel = doc.selection_array()
    assert (sel[30:90, 20:120] == 128).all() and sel[:30].sum() == 0


def test_layer_from_selection_without_selection_is_a_clear_error() -> None:
    doc = _doc_with_layers()
    with pytest.raises(ValueError, match="nothing is selected"):
        doc.layer_from_selection(doc.layers[0])


def test_locked_layers_refuse_pixel_changes_and_nothing_changes() -> None:
    doc = _doc_with_layers()
    layer = doc.layers[0]
    doc.set_property(layer, "locked", True)
    before = layer.surface.to_array()
    with pytest.raises(LayerLockedError, match="locked"):
        doc.fill_layer(layer, (0, 0, 0, 0))
    assert np.array_equal(layer.surface.to_array(), before)


def test_events_report_changes_in_document_coordinates() -> None:
    doc = Document(600, 600)
    layer = doc.add_layer()
    seen: list = []
    doc.events.pixels_changed.connect(lambda la, rect: seen.append((la, rect)))
    doc.set_property(layer, "offset", (300, 0))
    doc.replace_pixels(layer, np.full((10, 10, 4), 255, np.uint8), "paste", at=(5, 5))
    assert seen[-1][0] is layer and seen[-1][1].x >= 300  # tile rect, shifted by the offset
    stack_events: list = []
    doc.events.layers_changed.connect(lambda: stack_events.append(1))
    doc.add_layer()
    assert stack_events == [1]


def test_empty_layers_cost_next_to_nothing() -> None:
    doc = Document(4096, 4096)
    for _ in range(20):
        doc.add_layer()
    assert sum(la.surface.nbytes for la in doc.layers) == 0


def test_inpaint_mask_is_a_mask_layer_that_is_not_composited() -> None:
    doc = _doc_with_layers()
    before = doc.composite()
    mask = doc.ensure_inpaint_mask()
    assert isinstance(mask, MaskLayer) and mask.role == "inpaint" and doc.ensure_inpaint_mask() is mask
    doc.fill_layer(mask, 255)
    assert np.array_equal(doc.composite(), before)
    assert isinstance(doc.active, RasterLayer)


def test_bad_property_values_are_refused() -> None:
    doc = _doc_with_layers()
    with pytest.raises(ValueError, match="opacity"):
        doc.set_property(doc.layers[0], "opacity", 1.5)
    with pytest.raises(ValueError):
        doc.set_property(doc.layers[0], "blend_mode", "sparkle")
    with pytest.raises(ValueError, match="empty"):
        doc.rename_layer(doc.layers[0], "  ")
    with pytest.raises(ValueError, match="document size"):
        Document(0, 10)
