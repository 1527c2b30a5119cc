"""Blend modes against a float64 reference written straight from the W3C compositing spec."""

import numpy as np
import pytest

from diffedit.document import BlendMode, Document, RasterLayer, Rect
from diffedit.document.tiles import TiledSurface


def _b(mode: BlendMode, cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """W3C separable blend functions, one by one, in float64."""
    if mode is BlendMode.NORMAL:
        return cs
    if mode is BlendMode.MULTIPLY:
        return cb * cs
    if mode is BlendMode.SCREEN:
        return cb + cs - cb * cs
    if mode in (BlendMode.OVERLAY, BlendMode.HARD_LIGHT):
        a, b = (cs, cb) if mode is BlendMode.OVERLAY else (cb, cs)  # overlay = hardlight(Cs, Cb)
        return np.where(b <= 0.5, a * 2 * b, a + (2 * b - 1) - a * (2 * b - 1))
    if mode is BlendMode.DARKEN:
        return np.minimum(cb, cs)
    if mode is BlendMode.LIGHTEN:
        return np.maximum(cb, cs)
    if mode is BlendMode.COLOR_DODGE:
        out = np.empty_like(cb)
        for i, (b, s) in enumerate(zip(cb.flat, cs.flat, strict=True)):
            out.flat[i] = 0 if b == 0 else (1 if s >= 1 else min(1, b / (1 - s)))
        return out
    if mode is BlendMode.COLOR_BURN:
        out = np.empty_like(cb)
        for i, (b, s) in enumerate(zip(cb.flat, cs.flat, strict=True)):
            out.flat[i] = 1 if b >= 1 else (0 if s <= 0 else 1 - min(1, (1 - b) / s))
        return out
    if mode is BlendMode.SOFT_LIGHT:
        d = np.where(cb <= 0.25, ((16 * cb - 12) * cb + 4) * cb, np.sqrt(cb))
        return np.where(cs <= 0.5, cb - (1 - 2 * cs) * cb * (1 - cb), cb + (2 * cs - 1) * (d - cb))
    if mode is BlendMode.DIFFERENCE:
        return np.abs(cb - cs)
    if mode is BlendMode.EXCLUSION:
        return cb + cs - 2 * cb * cs
    if mode is BlendMode.ADD:
        return np.minimum(1, cb + cs)
    raise AssertionError(mode)


def reference_composite(layers: list[tuple[np.ndarray, float, BlendMode]]) -> np.ndarray:
    """Source-over with blending, per the spec: co = cs*as + cb*ab*(1-as), Cs' = (1-ab)Cs + ab*B."""
    h, w = layers[0][0].shape[:2]
    co = np.zeros((h, w, 3))
    ao = np.zeros((h, w, 1))
    for pixels, opacity, mode in layers:
        cs = pixels[..., :3] / 255
        a_s = pixels[..., 3:4] / 255 * opacity
        cb = np.divide(co, ao, out=np.zeros_like(co), where=ao > 0)
        blended = (1 - ao) * cs + ao * _b(mode, cb, cs)
        co = blended * a_s + co * (1 - a_s)
        ao = a_s + ao * (1 - a_s)
    rgb = np.divide(co, ao, out=np.zeros_like(co), where=ao > 0)
    return np.concatenate([rgb, ao], axis=2) * 255


@pytest.mark.parametrize("mode", list(BlendMode))
def test_every_blend_mode_matches_the_w3c_definition_within_one_level(mode: BlendMode) -> None:
    rng = np.random.default_rng(list(BlendMode).index(mode))
    base = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    top = rng.integers(0, 256, (40, 50, 4), dtype=np.uint8)
    base[:10, :, 3] = 0  # transparent backdrop: the blend must fall back to the source colour
    base[10:20, :, 3] = 255
    top[:, :5, 3] = 255
    top[:, 5:10, 3] = 0
    doc = Document(50, 40)
    doc.add_raster(base, "base")
    layer = doc.add_raster(top, "top")
    doc.set_property(layer, "blend_mode", mode)
    doc.set_property(layer, "opacity", 0.7)
    expected = reference_composite([(base, 1.0, BlendMode.NORMAL), (top, 0.7, mode)])
    got = doc.composite().astype(np.float64)
    opaque = expected[..., 3] > 0.5  # colour is undefined where nothing is left
    assert np.abs(got[..., 3] - expected[..., 3]).max() <= 1.0
    assert np.abs(got[opaque][:, :3] - expected[opaque][:, :3]).max() <= 1.0


def test_many_layers_with_mixed_modes_match_the_reference() -> None:
    rng = np.random.default_rng(7)
    doc = Document(64, 48)
    stack = []
    modes = [BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN, BlendMode.OVERLAY, BlendMode.ADD]
    for i, mode in enumerate(modes):
        px = rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)
        if i == 0:
            px[..., 3] = 255
        layer = doc.add_raster(px, f"l{i}")
        doc.set_property(layer, "blend_mode", mode)
        doc.set_property(layer, "opacity", 1.0 - 0.1 * i)
        stack.append((px, 1.0 - 0.1 * i, mode))
    expected = reference_composite(stack)
    got = doc.composite().astype(np.float64)
    assert np.abs(got - expected).max() <= 1.0


def test_dirty_rectangle_composite_equals_the_same_area_of_the_full_composite() -> None:
    rng = np.random.default_rng(1)
    doc = Document(700, 600)
    for i in range(4):
        doc.add_raster(rng.integers(0, 256, (600, 700, 4), dtype=np.uint8), f"l{i}")
    doc.set_property(doc.layers[2], "blend_mode", BlendMode.DIFFERENCE)
    full = doc.composite()
    for rect in [Rect(250, 200, 30, 90), Rect(0, 0, 700, 600), Rect(511, 255, 3, 3), Rect(690, 590, 50, 50)]:
        part = doc.composite(rect)
        inside = rect.intersect(doc.bounds)
        assert np.array_equal(part[: inside.h, : inside.w], full[inside.slices()])


def test_hidden_and_transparent_layers_do_not_change_the_composite() -> None:
    doc = Document(300, 300)
    bg = doc.add_layer(name="bg")
    doc.fill_layer(bg, (10, 20, 30, 255))
    before = doc.composite()
    hidden = doc.add_layer(name="hidden")
    doc.fill_layer(hidden, (200, 0, 0, 255))
    doc.set_property(hidden, "visible", False)
    doc.add_layer(name="empty")
    assert np.array_equal(doc.composite(), before)


def test_an_opaque_layer_hides_everything_below_it() -> None:
    doc = Document(300, 260)
    below = doc.add_layer(name="below")
    doc.fill_layer(below, (255, 0, 0, 255))
    top = doc.add_layer(name="top")
    doc.fill_layer(top, (0, 0, 255, 255))
    out = doc.composite()
    assert (out == [0, 0, 255, 255]).all()


def test_layer_offsets_place_pixels_in_document_coordinates() -> None:
    doc = Document(100, 100)
    px = np.zeros((10, 10, 4), np.uint8)
    px[...] = (0, 255, 0, 255)
    layer = RasterLayer(name="small", surface=TiledSurface.from_array(px), offset=(-5, 95))
    doc.add_layer(layer)
    out = doc.composite()
    assert (out[95:, :5] == [0, 255, 0, 255]).all()
    assert out[:95].sum() == 0 and out[95:, 5:].sum() == 0


def test_the_projection_cache_never_serves_a_stale_tile() -> None:
    from diffedit.document import compositor
    from diffedit.document.brush import BrushSettings, paint_stroke

    rng = np.random.default_rng(3)
    doc = Document(600, 520)
    a = doc.add_raster(rng.integers(0, 256, (520, 600, 4), dtype=np.uint8), "a")
    b = doc.add_layer(name="b")

    def fresh() -> np.ndarray:
        return compositor.composite(doc.layers, doc.bounds)

    assert np.array_equal(doc.composite(), fresh())
    paint_stroke(doc, b, [(10, 10), (590, 500)], BrushSettings(size=40), color=(255, 0, 0, 255))
    assert np.array_equal(doc.composite(), fresh())
    doc.set_property(b, "blend_mode", BlendMode.SCREEN)
    assert np.array_equal(doc.composite(), fresh())
    b.opacity = 0.3  # even a change made behind the history's back is seen
    a.surface.write(300, 300, np.zeros((50, 50, 4), np.uint8))
    assert np.array_equal(doc.composite(), fresh())
    a.surface.clear()
    assert np.array_equal(doc.composite(), fresh())
    doc.history.undo()
    doc.move_layer(b, 0)
    assert np.array_equal(doc.composite(), fresh())
    assert np.array_equal(doc.composite(Rect(100, 100, 300, 300)), fresh()[100:400, 100:400])
