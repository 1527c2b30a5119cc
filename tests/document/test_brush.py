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
