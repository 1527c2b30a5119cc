"""History: undo restores exact pixels after any sequence of edits; memory stays bounded."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffedit.document import BlendMode, Document, Rect, masks
from diffedit.document.brush import BrushMode, BrushSettings, paint_stroke
from diffedit.document.history import History


def _state(doc: Document) -> tuple:
    layers = tuple(
        (la.uid, la.name, la.opacity, la.visible, la.offset, getattr(la, "blend_mode", None),
         la.surface.to_array().tobytes())
        for la in doc.layers
    )
    return layers, doc.selection_array().tobytes(), doc.active.uid if doc.active else None


coords = st.integers(min_value=-10, max_value=90)
edits = st.one_of(
    st.tuples(st.just("stroke"), st.lists(st.tuples(coords, coords), min_size=1, max_size=4),
              st.integers(1, 30), st.booleans()),
    st.tuples(st.just("fill"), st.tuples(*[st.integers(0, 255)] * 4)),
    st.tuples(st.just("clear")),
    st.tuples(st.just("add")),
    st.tuples(st.just("delete")),
    st.tuples(st.just("duplicate")),
    st.tuples(st.just("move"), st.integers(0, 5)),
    st.tuples(st.just("opacity"), st.floats(0, 1)),
    st.tuples(st.just("mode"), st.sampled_from(list(BlendMode))),
    st.tuples(st.just("select"), coords, coords, st.integers(1, 60), st.integers(1, 60)),
    st.tuples(st.just("selection-op"), st.sampled_from(["invert", "grow", "shrink", "feather"])),
    st.tuples(st.just("merge")),
    st.tuples(st.just("mask-stroke"), coords, coords),
)


def _apply(doc: Document, edit: tuple) -> None:
    kind, *args = edit
    layer = doc.active
    if kind == "add" or layer is None:
        doc.add_layer()
        return
    if kind == "stroke":
        points, size, erase = args
        mode = BrushMode.ERASE if erase else BrushMode.PAINT
        if layer in doc.raster_layers:
            paint_stroke(doc, layer, [(float(x), float(y)) for x, y in points], BrushSettings(size=size), mode,
                         (255, 128, 0, 200))
    elif kind == "fill" and layer in doc.raster_layers:
        doc.fill_layer(layer, args[0])
    elif kind == "clear":
        doc.clear_layer(layer)
    elif kind == "delete":
        doc.delete_layer(layer)
    elif kind == "duplicate":
        doc.duplicate_layer(layer)
    elif kind == "move":
        doc.move_layer(layer, min(args[0], len(doc.layers) - 1))
    elif kind == "opacity":
        doc.set_property(layer, "opacity", args[0])
    elif kind == "mode" and layer in doc.raster_layers:
        doc.set_property(layer, "blend_mode", args[0])
    elif kind == "select":
        masks.select_ellipse(doc, Rect(*args))
    elif kind == "selection-op":
        masks.transform_selection(doc, args[0], 3)
    elif kind == "merge" and layer in doc.raster_layers and doc.raster_layers.index(layer) > 0:
        doc.merge_down(layer)
    elif kind == "mask-stroke":
        mask = doc.ensure_inpaint_mask()
        paint_stroke(doc, mask, [(float(args[0]), float(args[1]))], BrushSettings(size=12), BrushMode.MASK_ADD)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(edits, min_size=1, max_size=12))
def test_undoing_every_edit_restores_the_exact_document(sequence: list) -> None:
    doc = Document(80, 70)
    base = doc.add_layer(name="base")
    doc.fill_layer(base, (30, 60, 90, 255))
    doc.history.clear()
    start = _state(doc)
    states = [start]
    for edit in sequence:
        _apply(doc, edit)
        states.append(_state(doc))
    while doc.history.undo():
        pass
    assert _state(doc) == start
    # and redo walks forward through the very same states
    n = doc.history.index
    assert n == 0
    while doc.history.redo():
        pass
    assert _state(doc) == states[-1]


def test_a_stroke_keeps_only_its_tiles_not_a_layer_copy() -> None:
    doc = Document(4096, 4096)
    layer = doc.add_layer()
    doc.fill_layer(layer, (255, 255, 255, 255))
    paint_stroke(doc, layer, [(1000, 1000), (1300, 1000)], BrushSettings(size=20))
    step = doc.history._done[-1]
    layer_bytes = 4096 * 4096 * 4
    assert 0 < step.nbytes <= 4 * 256 * 256 * 4  # a few tiles, not 64 MB
    assert step.nbytes < layer_bytes / 50


def test_memory_limit_drops_the_oldest_steps() -> None:
    one_fill = 512 * 512 * 4  # the tiles one fill of this layer keeps
    doc = Document(512, 512, history_limit=3 * one_fill)
    layer = doc.add_layer()
    for i in range(1, 7):
        doc.fill_layer(layer, (i, i, i, 255))
    # the first fill kept nothing (the layer was empty); fills 2..6 keep one layer's tiles each
    assert doc.history.nbytes == 3 * one_fill
    assert doc.history.steps == ["Fill Layer"] * 3
    while doc.history.undo():
        pass
    assert layer.surface.to_array()[0, 0, 0] == 3  # the state before the oldest kept step


def test_goto_and_clean_state() -> None:
    doc = Document(64, 64)
    layer = doc.add_layer()
    doc.history.mark_clean()
    assert not doc.modified
    doc.fill_layer(layer, (1, 1, 1, 255))
    doc.fill_layer(layer, (2, 2, 2, 255))
    assert doc.modified and doc.history.steps[-2:] == ["Fill Layer", "Fill Layer"]
    doc.history.goto(1)
    assert not doc.modified and layer.surface.to_array().sum() == 0
    doc.history.goto(3)
    assert layer.surface.to_array()[0, 0, 0] == 2


def test_a_new_step_after_undo_discards_redo_and_the_clean_mark() -> None:
    h = History()
    doc = Document(32, 32)
    doc.history = h
    layer = doc.add_layer()
    doc.fill_layer(layer, (5, 5, 5, 255))
    h.mark_clean()
    h.undo()
    doc.fill_layer(layer, (9, 9, 9, 255))
    assert not h.can_redo() and not h.is_clean()


def test_failed_edit_leaves_the_document_unchanged() -> None:
    doc = Document(300, 300)
    layer = doc.add_layer()
    doc.fill_layer(layer, (7, 7, 7, 255))
    before = layer.surface.to_array()
    steps = len(doc.history.steps)
    try:
        with doc.edit_pixels(layer, "broken") as rec:
            rec.touch(Rect(0, 0, 300, 300))
            layer.surface.fill((0, 0, 0, 0))
            raise RuntimeError("simulated failure")
    except RuntimeError:
        pass
    assert np.array_equal(layer.surface.to_array(), before) and len(doc.history.steps) == steps
