"""Brush engine: dabs, gap-free interpolation, opacity/flow semantics, modes and one undo step."""

import numpy as np
import pytest

from diffedit.document import Document, LayerLockedError, Rect, masks
from diffedit.document.brush import BrushMode, BrushSettings, Stroke, dab_mask, paint_stroke


def test_dab_is_full_in_the_middle_and_zero_outside_the_radius() -> None:
    rect, cov = dab_mask(50.5, 50.5, 20, 0.5)
    cy, cx = 50 - rect.y, 50 - rect.x
    assert cov[cy, cx] == pytest.approx(1.0)
    ys, xs = np.mgrid[rect.y : rect.bottom, rect.x : rect.right]
    dist = np.hypot(xs + 0.5 - 50.5, ys + 0.5 - 50.5)
    assert cov[dist >= 10].max() == 0
    assert cov[dist <= 5].min() == pytest.approx(1.0)  # hardness 0.5: full inside half the radius
    soft = dab_mask(50.5, 50.5, 20, 0.0)[1]
    assert soft.sum() < cov.sum()


def test_fast_strokes_have_no_gaps() -> None:
    doc = Document(400, 100)
    layer = doc.add_layer()
    paint_stroke(doc, layer, [(10, 50), (390, 50)], BrushSettings(size=8, hardness=1.0))
    row = layer.surface.to_array()[50, :, 3]
    assert (row[12:388] > 200).all()


def test_opacity_caps_the_whole_stroke_while_flow_builds_up() -> None:
    doc = Document(200, 100)
    layer = doc.add_layer()
    settings = BrushSettings(size=30, hardness=1.0, opacity=0.5, flow=1.0, spacing=0.05)
    paint_stroke(doc, layer, [(50, 50), (60, 50), (50, 50), (60, 50)], settings, color=(0, 0, 0, 255))
    assert layer.surface.to_array()[50, 55, 3] == 128  # overlapping dabs do not pass 50 %
    layer2 = doc.add_layer()
    paint_stroke(doc, layer2, [(50, 50)], BrushSettings(size=30, hardness=1.0, flow=0.3), color=(0, 0, 0, 255))
    one_dab = layer2.surface.to_array()[50, 50, 3]
    layer3 = doc.add_layer()
    paint_stroke(doc, layer3, [(50, 50), (51, 50), (50, 50), (51, 50)], BrushSettings(size=30, hardness=1.0, flow=0.3,
                 spacing=0.02), color=(0, 0, 0, 255))
    assert one_dab == pytest.approx(0.3 * 255, abs=1)
    assert layer3.surface.to_array()[50, 50, 3] > one_dab  # flow builds up within a stroke


def test_paint_colour_over_existing_pixels_and_erase() -> None:
    doc = Document(100, 100)
    layer = doc.add_layer()
    doc.fill_layer(layer, (0, 0, 255, 255))
    paint_stroke(doc, layer, [(50, 50)], BrushSettings(size=20, hardness=1.0), color=(255, 0, 0, 255))
    assert tuple(layer.surface.to_array()[50, 50]) == (255, 0, 0, 255)
    paint_stroke(doc, layer, [(20, 20)], BrushSettings(size=20, hardness=1.0), mode=BrushMode.ERASE)
    assert layer.surface.to_array()[20, 20, 3] == 0


def test_pressure_scales_size() -> None:
    doc = Document(200, 100)
    layer = doc.add_layer()
    paint_stroke(doc, layer, [(50, 50, 1.0)], BrushSettings(size=40, hardness=1.0))
    big = (layer.surface.to_array()[..., 3] > 0).sum()
    layer2 = doc.add_layer()
    paint_stroke(doc, layer2, [(50, 50, 0.25)], BrushSettings(size=40, hardness=1.0))
    small = (layer2.surface.to_array()[..., 3] > 0).sum()
    assert small < big / 8


def test_mask_add_and_subtract() -> None:
    doc = Document(100, 100)
    mask = doc.ensure_inpaint_mask()
    paint_stroke(doc, mask, [(30, 50), (70, 50)], BrushSettings(size=20, hardness=1.0), BrushMode.MASK_ADD)
    m = mask.surface.to_array()[..., 0]
    assert m[50, 50] == 255 and m[10, 10] == 0
    paint_stroke(doc, mask, [(50, 50)], BrushSettings(size=10, hardness=1.0), BrushMode.MASK_SUBTRACT)
    m = mask.surface.to_array()[..., 0]
    assert m[50, 50] == 0 and m[50, 35] == 255


def test_wrong_mode_for_the_layer_kind_is_refused() -> None:
    doc = Document(50, 50)
    mask = doc.ensure_inpaint_mask()
    raster = doc.add_layer()
    with pytest.raises(ValueError, match="mask-add"):
        Stroke(doc, mask, BrushSettings(), BrushMode.PAINT)
    with pytest.raises(ValueError, match="paint or erase"):
        Stroke(doc, raster, BrushSettings(), BrushMode.MASK_ADD)
    doc.set_property(raster, "locked", True)
    with pytest.raises(LayerLockedError):
        Stroke(doc, raster, BrushSettings())
    with pytest.raises(ValueError, match="brush size"):
        BrushSettings(size=0)


def test_one_stroke_is_one_undo_step_and_cancel_restores() -> None:
    doc = Document(300, 300)
    layer = doc.add_layer()
    doc.fill_layer(layer, (9, 9, 9, 255))
    before = layer.surface.to_array()
    steps = len(doc.history.steps)
    stroke = Stroke(doc, layer, BrushSettings(size=10), color=(255, 255, 255, 255))
    for x in range(10, 290, 7):
        stroke.add_point(x, x * 0.5)
    stroke.end()
    assert len(doc.history.steps) == steps + 1
    doc.history.undo()
    assert np.array_equal(layer.surface.to_array(), before)
    stroke = Stroke(doc, layer, BrushSettings(size=10))
    stroke.add_point(10, 10)
    stroke.add_point(100, 100)
    stroke.cancel()
    assert np.array_equal(layer.surface.to_array(), before)


def test_selection_clips_the_brush() -> None:
    doc = Document(100, 100)
    layer = doc.add_layer()
    masks.select_rectangle(doc, Rect(0, 0, 50, 100))
    paint_stroke(doc, layer, [(10, 50), (90, 50)], BrushSettings(size=10, hardness=1.0))
    a = layer.surface.to_array()[..., 3]
    assert a[50, 20] == 255 and a[:, 50:].sum() == 0


def test_stroke_reports_the_changed_rectangle() -> None:
    doc = Document(1000, 1000)
    layer = doc.add_layer()
    rects: list = []
    doc.events.pixels_changed.connect(lambda la, r: rects.append(r))
    stroke = Stroke(doc, layer, BrushSettings(size=10))
    changed = stroke.add_point(500, 500)
    assert changed.w <= 13 and changed.h <= 13 and changed.x >= 490
    assert rects[-1] == changed


@pytest.mark.parametrize("mode", [BrushMode.PAINT, BrushMode.ERASE])
def test_dabs_laid_together_paint_what_dabs_laid_one_by_one_paint(mode: BrushMode) -> None:
    """A point's dabs are computed in one pass over their joint area (issue #5); the pixels must be
    those of painting each dab in turn, also where the joint area holds pixels no dab reached."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (300, 300, 4), dtype=np.uint8)
    dabs = [(float(x), float(y), float(p)) for x, y, p in rng.uniform((0, 0, 0.2), (300, 300, 1.0), (40, 3))]
    results = []
    for together in (True, False):
        doc = Document(300, 300)
        layer = doc.add_raster(base.copy(), offset=(5, -7))
        masks.select_rectangle(doc, Rect(20, 20, 200, 250))
        settings = BrushSettings(size=31, hardness=0.3, opacity=0.8, flow=0.6, pressure_opacity=True)
        stroke = Stroke(doc, layer, settings, mode, (10, 200, 30, 180))
        if together:
            stroke._paint_dabs(dabs)
        else:
            for dab in dabs:
                stroke._paint_dabs([dab])
        results.append((layer.surface.to_array(), sorted(stroke.recorder.before)))
    assert np.array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]  # the same tiles recorded for undo


def test_ending_a_stroke_reports_nothing_more_but_undo_does() -> None:
    doc = Document(1000, 1000)
    layer = doc.add_layer()
    rects: list = []
    doc.events.pixels_changed.connect(lambda la, r: rects.append(r))
    stroke = Stroke(doc, layer, BrushSettings(size=10))
    stroke.add_point(100, 100)
    stroke.add_point(700, 600)
    reported = list(rects)
    assert stroke.end()
    assert rects == reported  # every dab was reported as painted: releasing recomposites nothing
    doc.history.undo()
    assert len(rects) == len(reported) + 1 and rects[-1].intersect(stroke.dirty) == stroke.dirty
    doc.history.redo()
    assert len(rects) == len(reported) + 2 and layer.surface.to_array()[600, 700, 3] > 0


def test_a_jump_across_the_image_is_painted_in_compact_runs() -> None:
    doc = Document(4096, 4096)
    stroke = Stroke(doc, doc.add_layer(), BrushSettings(size=24, spacing=0.1))
    move = [(100 + 1.7 * i, 100 + 1.7 * i, 1.0) for i in range(40)]  # one mouse move: one pass
    assert stroke._compact_runs(move) == [move]
    jump = [(100 + 1.7 * i, 100 + 1.7 * i, 1.0) for i in range(1200)]  # 2000 px in one event
    runs = stroke._compact_runs(jump)
    assert len(runs) > 1 and [p for run in runs for p in run] == jump
    for run in runs:
        box = Rect(0, 0, 0, 0)
        for x, y, _ in run:
            box = box.union(Rect.around(x, y, 12))
        assert box.w * box.h <= 256 * 256
