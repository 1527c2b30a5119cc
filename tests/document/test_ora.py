"""OpenRaster (.ora): our files against the spec, files as GIMP, Krita and MyPaint write them, round
trips of everything DiffEdit keeps, and archives that are damaged or hostile."""

from __future__ import annotations

import io
import json
import struct
import tempfile
import xml.etree.ElementTree as ET
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from diffedit.document import BlendMode, Document, GenerationRecord, MaskLayer, RasterLayer, Rect
from diffedit.document import ora as ora_module
from diffedit.document.imagefiles import ImageFileError, ImageTooLargeError
from diffedit.document.io import open_document, save_document
from diffedit.document.ora import OraError, load_ora, ora_bytes, save_ora
from diffedit.document.tiles import TiledSurface

RNG = np.random.default_rng(77)


# -- helpers ---------------------------------------------------------------------------------------
def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "PNG")
    return buf.getvalue()


def solid(w: int, h: int, rgba: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros((h, w, 4), np.uint8)
    out[...] = rgba
    return out


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny 1-bit PNG whose header claims width x height (the data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def make_ora(
    path: Path,
    stack_xml: str | bytes,
    members: dict[str, bytes],
    mimetype: bytes | None = b"image/openraster",
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """An .ora built by hand, the way other editors write them."""
    with zipfile.ZipFile(path, "w") as z:
        if mimetype is not None:
            z.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        z.writestr("stack.xml", stack_xml, compress_type=compression)
        for name, data in members.items():
            z.writestr(name, data, compress_type=compression)
    return path


def simple_ora(
    path: Path, layer_png: bytes | None = None, src: str = "data/layer0.png", w: int = 8, h: int = 8
) -> Path:
    stack = f'<image w="{w}" h="{h}"><stack><layer name="one" src="{src}" x="0" y="0"/></stack></image>'
    return make_ora(path, stack, {src: layer_png if layer_png is not None else png(solid(w, h, (1, 2, 3, 255)))})


def doc_pixels(layer: RasterLayer | MaskLayer, doc: Document) -> np.ndarray:
    """The layer's pixels over the document area, in document coordinates."""
    return layer.surface.read(Rect(-layer.offset[0], -layer.offset[1], doc.width, doc.height))


def blend_expect(base: np.ndarray, src: np.ndarray, opacity: float, fn) -> np.ndarray:
    """Expected RGB of an opaque layer over an opaque backdrop (W3C: co = B(cb, cs) * a + cb * (1 - a))."""
    cb, cs = base / 255.0, src / 255.0
    return (fn(cb, cs) * opacity + cb * (1 - opacity)) * 255


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


RECORD = GenerationRecord(task="txt2img", model="m", model_hash="abc", sampler="ddim", steps=12, seed=5,
                          params={"prompt": "a fox", "guidance_scale": 6.0})
MASK_RECORD = GenerationRecord(task="segment", params={"classes": ["fox", "tree"]})


def rich_document() -> Document:
    doc = Document(40, 30, name="rich")
    base = doc.add_raster(RNG.integers(0, 256, (30, 40, 4), dtype=np.uint8), name="base")
    base.record = RECORD
    wide = doc.add_raster(RNG.integers(1, 256, (12, 70, 4), dtype=np.uint8), name="wide", offset=(-10, 5))
    doc.set_property(wide, "blend_mode", BlendMode.MULTIPLY)
    doc.set_property(wide, "opacity", 0.3700000000000001)
    hidden = doc.add_raster(solid(6, 6, (255, 0, 0, 255)), name="hidden", offset=(30, 20))
    doc.set_property(hidden, "visible", False)
    screen = doc.add_raster(solid(10, 8, (0, 90, 200, 200)), name="screen <&> \"q\"", offset=(35, -3))
    doc.set_property(screen, "blend_mode", BlendMode.SCREEN)
    doc.set_property(screen, "locked", True)
    mask_pixels = np.zeros((30, 40), np.uint8)
    mask_pixels[5:20, 8:30] = 255
    mask_pixels[10:12, 10:12] = 77
    mask = MaskLayer(name="Inpaint mask", surface=TiledSurface.from_array(mask_pixels[..., None]), role="inpaint",
                     color=(10, 200, 30), opacity=0.6, record=MASK_RECORD)
    doc.add_layer(mask, index=2)
    sel = np.zeros((30, 40), np.uint8)
    sel[3:9, 4:16] = 255
    sel[9, 4:16] = 128
    doc.set_selection(sel)
    doc.set_active(mask)
    doc.metadata = {"parameters": "a fox\nSteps: 12", "note": ["x", 1]}
    return doc


def assert_same_document(a: Document, b: Document) -> None:
    assert (a.width, a.height) == (b.width, b.height)
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert type(la) is type(lb)
        assert (la.name, la.opacity, la.visible, la.locked, la.offset) == (lb.name, lb.opacity, lb.visible, lb.locked,
                                                                          lb.offset)
        assert (la.width, la.height) == (lb.width, lb.height)
        assert la.record == lb.record
        np.testing.assert_array_equal(la.surface.to_array(), lb.surface.to_array())
        if isinstance(la, RasterLayer):
            assert la.blend_mode is lb.blend_mode  # type: ignore[union-attr]
        else:
            assert (la.role, tuple(la.color)) == (lb.role, tuple(lb.color))  # type: ignore[union-attr]
    np.testing.assert_array_equal(a.composite(), b.composite())
    np.testing.assert_array_equal(a.selection_array(), b.selection_array())
    assert (a.index_of(a.active) if a.active else None) == (b.index_of(b.active) if b.active else None)
    assert a.metadata == b.metadata


# -- our files against the spec ----------------------------------------------------------------------
def test_archive_layout_follows_the_spec(tmp_path: Path) -> None:
    doc = rich_document()
    path = save_ora(doc, tmp_path / "rich.ora")
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        infos = z.infolist()
        first = infos[0]
        assert first.filename == "mimetype"
        assert first.compress_type == zipfile.ZIP_STORED
        assert first.extra == b""
        assert z.read("mimetype") == b"image/openraster"  # no whitespace, no newline
        # the raw bytes at the very start, as file sniffers read them
        assert path.read_bytes()[30:38] == b"mimetype" and path.read_bytes()[38:54] == b"image/openraster"
        names = z.namelist()
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= set(names)
        assert len(names) == len(set(names))

        root = ET.fromstring(z.read("stack.xml"))
        assert root.tag == "image"
        assert (root.get("w"), root.get("h")) == ("40", "30")
        assert root.get("version")
        stacks = root.findall("stack")
        assert len(stacks) == 1
        layer_els = list(stacks[0])
        assert all(el.tag == "layer" for el in layer_els)
        # topmost first, mask layers absent (they are not composited)
        assert [el.get("name") for el in layer_els] == ["screen <&> \"q\"", "hidden", "wide", "base"]
        by_name = {el.get("name"): el for el in layer_els}
        assert by_name["hidden"].get("visibility") == "hidden"
        assert by_name["base"].get("visibility") == "visible"
        assert by_name["wide"].get("composite-op") == "svg:multiply"
        assert by_name["screen <&> \"q\""].get("composite-op") == "svg:screen"
        assert by_name["base"].get("composite-op") == "svg:src-over"
        assert float(by_name["wide"].get("opacity")) == 0.3700000000000001
        assert by_name["screen <&> \"q\""].get("edit-locked") == "true"
        assert not any(el.get("selected") == "true" for el in layer_els)  # the active layer is the mask
        srcs = [el.get("src") for el in layer_els]
        assert len(set(srcs)) == len(srcs)
        data_members = {n for n in names if n.startswith("data/")}
        assert data_members == set(srcs)  # every file in data/ is referenced, all are PNG
        for el in layer_els:
            with Image.open(io.BytesIO(z.read(el.get("src")))) as img:
                assert img.format == "PNG" and img.mode == "RGBA"
                layer = doc.layer_named(el.get("name"))
                x, y = int(el.get("x")), int(el.get("y"))
                got = np.asarray(img)
                want = layer.surface.read(Rect(x - layer.offset[0], y - layer.offset[1], img.width, img.height))
                np.testing.assert_array_equal(got, want)
        assert "Thumbnails/thumbnail.png" not in srcs and "mergedimage.png" not in srcs

        with Image.open(io.BytesIO(z.read("mergedimage.png"))) as merged:
            assert merged.size == (40, 30)
            np.testing.assert_array_equal(np.asarray(merged.convert("RGBA")), doc.composite())
        with Image.open(io.BytesIO(z.read("Thumbnails/thumbnail.png"))) as thumb:
            assert thumb.format == "PNG"
            assert max(thumb.size) <= 256
            assert not thumb.info.get("interlace")
            assert thumb.mode in ("RGB", "RGBA")  # 8 bits per channel


def test_large_document_thumbnail_is_at_most_256_and_keeps_aspect(tmp_path: Path) -> None:
    doc = Document(1000, 400)
    doc.add_raster(solid(1000, 400, (9, 9, 9, 255)))
    with zipfile.ZipFile(save_ora(doc, tmp_path / "big.ora")) as z, Image.open(
        io.BytesIO(z.read("Thumbnails/thumbnail.png"))
    ) as thumb:
        assert thumb.size == (256, 102)


def test_a_stack_xml_only_reader_sees_the_raster_layers(tmp_path: Path) -> None:
    """What GIMP or MyPaint would see: the raster layers with their settings, and the same picture."""
    doc = Document(32, 24)
    doc.add_raster(solid(32, 24, (20, 40, 60, 255)), name="bg")
    a = doc.add_raster(RNG.integers(0, 256, (10, 50, 4), dtype=np.uint8), name="a", offset=(-9, 3))
    doc.set_property(a, "opacity", 0.5)
    b = doc.add_raster(solid(8, 8, (255, 255, 0, 255)), name="b", offset=(20, 18))
    doc.set_property(b, "visible", False)
    doc.add_raster(solid(5, 5, (200, 0, 0, 128)), name="c", offset=(1, 1))
    doc.add_layer(MaskLayer.empty(32, 24, "mask", role="inpaint"))
    save_document(doc, tmp_path / "plain.ora")

    with zipfile.ZipFile(tmp_path / "plain.ora") as z:
        root = ET.fromstring(z.read("stack.xml"))
        seen = []
        canvas = np.zeros((24, 32, 4), np.float64)  # straight colour + alpha in 0..1
        for el in reversed(list(root.find("stack"))):  # bottom first
            seen.append((el.get("name"), el.get("visibility"), float(el.get("opacity")), el.get("composite-op")))
            if el.get("visibility") == "hidden":
                continue
            with Image.open(io.BytesIO(z.read(el.get("src")))) as img:
                src = np.asarray(img.convert("RGBA")).astype(np.float64) / 255
            x, y = int(el.get("x")), int(el.get("y"))
            full = np.zeros_like(canvas)
            ys, xs = slice(max(y, 0), min(y + src.shape[0], 24)), slice(max(x, 0), min(x + src.shape[1], 32))
            full[ys, xs] = src[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
            a_s = full[..., 3:] * float(el.get("opacity"))
            a_b = canvas[..., 3:]
            a_o = a_s + a_b * (1 - a_s)
            colour = np.divide(full[..., :3] * a_s + canvas[..., :3] * a_b * (1 - a_s), a_o, out=np.zeros_like(
                canvas[..., :3]), where=a_o > 0)
            canvas = np.concatenate([colour, a_o], -1)
    assert seen == [("bg", "visible", 1.0, "svg:src-over"), ("a", "visible", 0.5, "svg:src-over"),
                    ("b", "hidden", 1.0, "svg:src-over"), ("c", "visible", 1.0, "svg:src-over")]
    expected = np.rint(canvas * 255).astype(int)
    assert np.abs(expected - doc.composite().astype(int)).max() <= 1


# -- round trips of our own files --------------------------------------------------------------------
def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    doc = rich_document()
    path = save_document(doc, tmp_path / "rich.ora")
    assert not doc.modified and doc.path == str(path)
    loaded = open_document(path)
    back = loaded.document
    assert_same_document(doc, back)
    assert isinstance(back.active, MaskLayer) and back.active.role == "inpaint"
    assert back.inpaint_mask is back.active
    assert back.path == str(path) and back.name == "rich"
    assert not back.modified and not back.history.can_undo()
    assert loaded.notes == []


def test_round_trip_keeps_a_raster_active_layer_and_marks_it_selected(tmp_path: Path) -> None:
    doc = rich_document()
    doc.set_active(doc.layer_named("wide"))
    path = save_ora(doc, tmp_path / "a.ora")
    with zipfile.ZipFile(path) as z:
        selected = [el.get("name") for el in ET.fromstring(z.read("stack.xml")).iter("layer")
                    if el.get("selected") == "true"]
    assert selected == ["wide"]
    assert load_ora(path).document.active.name == "wide"


def test_round_trip_of_empty_layers_and_no_selection(tmp_path: Path) -> None:
    doc = Document(300, 260)  # more than one tile
    doc.add_layer(name="empty")
    doc.add_layer(MaskLayer.empty(300, 260, "empty mask"))
    back = load_ora(save_ora(doc, tmp_path / "e.ora")).document
    assert_same_document(doc, back)
    assert not back.has_selection


def test_control_characters_in_layer_names_round_trip(tmp_path: Path) -> None:
    doc = Document(4, 4)
    doc.add_raster(solid(4, 4, (1, 1, 1, 255)), name="tab\there\x01\x1f\ufffe")
    path = save_ora(doc, tmp_path / "n.ora")
    with zipfile.ZipFile(path) as z:
        ET.fromstring(z.read("stack.xml"))  # other readers can parse it
    assert load_ora(path).document.layers[0].name == "tab\there\x01\x1f\ufffe"


def test_layers_another_editor_added_are_kept(tmp_path: Path) -> None:
    """Our sidecar does not list a layer (another tool added it): it still loads, on top."""
    doc = rich_document()
    data = ora_bytes(doc)
    src_zip = zipfile.ZipFile(io.BytesIO(data))
    out = tmp_path / "edited.ora"
    with zipfile.ZipFile(out, "w") as z:
        for info in src_zip.infolist():
            content = src_zip.read(info)
            if info.filename == "stack.xml":
                root = ET.fromstring(content)
                stack = root.find("stack")
                stack.insert(0, ET.Element("layer", {"name": "added", "src": "data/added.png", "x": "2", "y": "3"}))
                content = ET.tostring(root)
            z.writestr(info, content)
        z.writestr("data/added.png", png(solid(4, 4, (0, 255, 0, 255))))
    back = load_ora(out).document
    assert [la.name for la in back.layers] == [la.name for la in doc.layers] + ["added"]
    assert tuple(back.composite()[4, 3]) == (0, 255, 0, 255)


# -- property test: random documents round-trip exactly --------------------------------------------
names = st.text(min_size=1, max_size=6)


@st.composite
def documents(draw: st.DrawFn) -> Document:
    w, h = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    doc = Document(w, h)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 3))):
        lw, lh = draw(st.integers(1, 36)), draw(st.integers(1, 36))
        pixels = rng.integers(0, 256, (lh, lw, 4), dtype=np.uint8)
        pixels[rng.random((lh, lw)) < draw(st.floats(0, 1))] = 0  # sparse, and clear pixels are all zero
        pixels[pixels[..., 3] == 0] = 0
        layer = RasterLayer(
            name=draw(names),
            surface=TiledSurface.from_array(pixels),
            opacity=draw(st.floats(0, 1)),
            visible=draw(st.booleans()),
            locked=draw(st.booleans()),
            offset=(draw(st.integers(-20, 30)), draw(st.integers(-20, 30))),
            blend_mode=draw(st.sampled_from(list(BlendMode))),
        )
        if draw(st.booleans()):
            layer.record = GenerationRecord(task="txt2img", seed=draw(st.integers(0, 2**31)),
                                            params={"prompt": draw(names)})
        doc.layers.append(layer)
    if draw(st.booleans()):
        mw, mh = draw(st.integers(1, 30)), draw(st.integers(1, 30))
        mask = MaskLayer(
            name=draw(names),
            surface=TiledSurface.from_array(rng.integers(0, 256, (mh, mw, 1), dtype=np.uint8)),
            opacity=draw(st.floats(0, 1)),
            visible=draw(st.booleans()),
            offset=(draw(st.integers(-10, 10)), draw(st.integers(-10, 10))),
            role=draw(st.sampled_from(["", "inpaint", "segment"])),
            color=(draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 255))),
        )
        doc.layers.insert(draw(st.integers(0, len(doc.layers))), mask)
    if draw(st.booleans()):
        doc.selection.write(0, 0, rng.integers(0, 256, (h, w), dtype=np.uint8))
    doc.set_active(draw(st.sampled_from(doc.layers)))
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_random_documents_round_trip(doc: Document) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "doc.ora"
        save_ora(doc, path)
        back = load_ora(path).document
    assert_same_document(doc, back)
    for la, lb in zip(doc.layers, back.layers, strict=True):
        np.testing.assert_array_equal(doc_pixels(la, doc), doc_pixels(lb, back))


# -- files written by other editors ----------------------------------------------------------------
W, H = 64, 48
BG = (50, 50, 50, 255)


def test_gimp_style_file(tmp_path: Path) -> None:
    # GIMP: version 0.0.x, a root stack with attributes, every layer with all attributes, PNG per layer
    grey = solid(20, 20, (128, 128, 128, 255))
    red = solid(W, H, (255, 0, 0, 255))
    half = solid(10, 10, (0, 0, 255, 255))
    stack = f"""<?xml version='1.0' encoding='UTF-8'?>
<image version="0.0.3" w="{W}" h="{H}">
  <stack opacity="1" name="root" visibility="visible" composite-op="svg:src-over" isolation="isolate" x="0" y="0">
    <layer opacity="0.5" name="Blue half" visibility="visible" src="data/Blue half.png"
           composite-op="svg:src-over" x="30" y="20" selected="false"/>
    <layer opacity="1" name="Red hidden" visibility="hidden" src="data/Red hidden.png"
           composite-op="svg:src-over" x="0" y="0"/>
    <layer opacity="1.000" name="Grey multiply" visibility="visible" src="data/Grey multiply.png"
           composite-op="svg:multiply" x="4" y="4" selected="true"/>
    <layer opacity="1" name="Background" visibility="visible" src="data/Background.png"
           composite-op="svg:src-over" x="0" y="0"/>
  </stack>
</image>"""
    path = make_ora(tmp_path / "gimp.ora", stack, {
        "data/Blue half.png": png(half), "data/Red hidden.png": png(red), "data/Grey multiply.png": png(grey),
        "data/Background.png": png(solid(W, H, BG)), "mergedimage.png": png(solid(W, H, BG)),
        "Thumbnails/thumbnail.png": png(solid(8, 6, BG)),
    })
    loaded = load_ora(path)
    doc = loaded.document
    assert [la.name for la in doc.layers] == ["Background", "Grey multiply", "Red hidden", "Blue half"]
    bg, mult, hidden, blue = doc.layers
    assert all(isinstance(la, RasterLayer) for la in doc.layers)
    assert mult.blend_mode is BlendMode.MULTIPLY and bg.blend_mode is BlendMode.NORMAL
    assert hidden.visible is False and blue.visible is True
    assert blue.opacity == 0.5 and mult.opacity == 1.0
    assert doc.active is mult  # selected="true"
    # layers inside the canvas become canvas-sized layers with the pixels at their place
    assert mult.offset == (0, 0) and (mult.width, mult.height) == (W, H)
    assert tuple(doc_pixels(mult, doc)[4, 4]) == (128, 128, 128, 255)
    assert tuple(doc_pixels(mult, doc)[3, 3]) == (0, 0, 0, 0)
    out = doc.composite().astype(int)
    assert tuple(out[0, 0]) == BG  # hidden red layer does not show
    mult_px = blend_expect(np.array(BG[:3]), np.array([128, 128, 128]), 1.0, lambda b, s: b * s)
    assert np.abs(out[10, 10, :3] - mult_px).max() <= 1
    blue_px = blend_expect(np.array(BG[:3]), np.array([0, 0, 255]), 0.5, lambda b, s: s)
    assert np.abs(out[25, 35, :3] - blue_px).max() <= 1
    assert loaded.notes == []
    assert not doc.modified and doc.name == "gimp"


def test_krita_style_file_with_groups_namespaces_and_extra_attributes(tmp_path: Path) -> None:
    stack = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE image>
<image xmlns:krita="http://krita.org/namespaces/svg/krita" mime="image/openraster" version="0.0.1"
       w="{W}" h="{H}" xres="300" yres="300" name="Unnamed">
 <krita:animation framerate="24"/>
 <stack name="root" opacity="1" visibility="visible">
  <stack name="Hidden group" visibility="hidden" opacity="1" x="0" y="0" composite-op="svg:src-over"
         isolation="isolate" collapsed="false" krita:collapsed="true">
   <layer name="In hidden group" src="data/layer5.png" x="0" y="0" opacity="1" visibility="visible"
          composite-op="svg:src-over"/>
  </stack>
  <stack name="Group" visibility="visible" opacity="0.5" x="10" y="5" composite-op="svg:src-over"
         isolation="isolate" collapsed="false">
   <layer name="Add" src="data/layer4.png" x="30" y="25" opacity="1" visibility="visible"
          composite-op="svg:plus" krita:channellockflags="1111" selected="true"/>
   <layer name="Screen" src="data/layer3.png" x="4" y="4" opacity="1" visibility="visible"
          composite-op="svg:screen" krita:visible-in-timeline="false">
     <krita:filter name="none"/>
   </layer>
  </stack>
  <layer name="Hue" src="data/layer2.png" x="0" y="40" opacity="1" visibility="visible"
         composite-op="svg:hue" selected="false"/>
  <text name="title">not pixels</text>
  <layer name="Background" src="data/layer1.png" x="0" y="0" opacity="1" visibility="visible"
         composite-op="svg:src-over" krita:locked="false"/>
 </stack>
</image>"""
    path = make_ora(tmp_path / "krita.ora", stack, {
        "data/layer1.png": png(solid(W, H, BG)),
        "data/layer2.png": png(solid(W, 8, (0, 200, 0, 255))),
        "data/layer3.png": png(solid(10, 10, (100, 150, 200, 255))),
        "data/layer4.png": png(solid(10, 8, (100, 0, 0, 255))),
        "data/layer5.png": png(solid(W, H, (255, 255, 255, 255))),
        "mergedimage.png": png(solid(W, H, BG)),
    })  # no thumbnail: optional for reading
    loaded = load_ora(path)
    doc = loaded.document
    names = [la.name for la in doc.layers]
    assert names == ["Background", "Hue", "Screen", "Add", "In hidden group"]
    by = {la.name: la for la in doc.layers}
    assert by["In hidden group"].visible is False  # a hidden group hides its children
    assert by["Screen"].opacity == 0.5 and by["Add"].opacity == 0.5  # group opacity folds in
    assert by["Screen"].blend_mode is BlendMode.SCREEN
    assert by["Add"].blend_mode is BlendMode.ADD
    assert by["Hue"].blend_mode is BlendMode.NORMAL  # unknown to DiffEdit: shown as normal, with a note
    assert any("svg:hue" in n for n in loaded.notes)
    assert any("groups" in n for n in loaded.notes)
    assert any("text" in n for n in loaded.notes)
    assert doc.active is by["Add"]
    # group offsets add to the layer offsets: Screen at (14, 9), Add at (40, 30)
    assert tuple(doc_pixels(by["Screen"], doc)[9, 14]) == (100, 150, 200, 255)
    assert tuple(doc_pixels(by["Screen"], doc)[8, 13]) == (0, 0, 0, 0)
    assert tuple(doc_pixels(by["Add"], doc)[30, 40]) == (100, 0, 0, 255)
    out = doc.composite().astype(int)
    bg = np.array(BG[:3])
    screen = blend_expect(bg, np.array([100, 150, 200]), 0.5, lambda b, s: b + s - b * s)
    assert np.abs(out[12, 18, :3] - screen).max() <= 1
    plus = blend_expect(bg, np.array([100, 0, 0]), 0.5, lambda b, s: np.minimum(1, b + s))
    assert np.abs(out[33, 45, :3] - plus).max() <= 1
    assert tuple(out[44, 5, :3]) == (0, 200, 0)  # the "hue" layer, composited as normal
    assert tuple(out[2, 60]) == BG  # the hidden group's white layer does not show


def test_mypaint_style_file_with_negative_offsets_and_oversized_layers(tmp_path: Path) -> None:
    glow = np.zeros((60, 80, 4), np.uint8)  # bigger than the 64 x 48 image
    glow[...] = (0, 0, 0, 0)
    glow[6:10, 18:22] = (200, 100, 0, 255)  # lands at document x 10..13, y 0..3
    glow[50:60, 70:80] = (9, 9, 9, 255)  # lands outside the canvas at (62..72, 44..54)
    corner = solid(6, 6, (0, 255, 0, 255))
    stack = f"""<?xml version='1.0' encoding='UTF-8'?>
<image h="{H}" w="{W}" version="0.0.5" xres="72" yres="72">
  <stack>
    <layer composite-op="svg:src-over" name="corner" opacity="1.0" src="data/layer002.png"
           visibility="visible" x="-3" y="-2" mypaint_strokemap="data/layer002_strokemap.dat"/>
    <layer composite-op="svg:screen" name="glow" opacity="0.75" src="data/layer001.png"
           visibility="visible" x="-8" y="-6" selected="true"/>
    <layer composite-op="svg:src-over" name="background" opacity="1.0" src="data/layer000.png"
           visibility="visible" x="0" y="0"/>
  </stack>
</image>"""
    path = make_ora(tmp_path / "mypaint.ora", stack, {
        "data/layer000.png": png(solid(W, H, BG)), "data/layer001.png": png(glow),
        "data/layer002.png": png(corner), "data/layer002_strokemap.dat": b"\x00binary",
    }, compression=zipfile.ZIP_STORED)  # no mergedimage, no thumbnail
    doc = load_ora(path).document
    _bg, glow_layer, corner_layer = doc.layers
    assert [la.name for la in doc.layers] == ["background", "glow", "corner"]
    assert glow_layer.offset == (-8, -6) and (glow_layer.width, glow_layer.height) == (80, 60)
    assert corner_layer.offset == (-3, -2) and (corner_layer.width, corner_layer.height) == (6, 6)
    np.testing.assert_array_equal(glow_layer.surface.to_array(), glow)  # nothing cut off
    assert glow_layer.opacity == 0.75 and glow_layer.blend_mode is BlendMode.SCREEN
    assert doc.active is glow_layer
    out = doc.composite().astype(int)
    assert tuple(out[1, 1]) == (0, 255, 0, 255)  # corner layer, shifted up-left
    assert tuple(out[5, 5]) == BG  # outside both
    screen = blend_expect(np.array(BG[:3]), np.array([200, 100, 0]), 0.75, lambda b, s: b + s - b * s)
    assert np.abs(out[1, 11, :3] - screen).max() <= 1
    # the layer survives a round trip through our own format with its full size
    back = load_ora(save_ora(doc, tmp_path / "again.ora")).document
    assert_same_document(doc, back)


def test_foreign_file_without_mimetype_or_optional_files_opens(tmp_path: Path) -> None:
    path = make_ora(tmp_path / "bare.ora", '<image w="4" h="3"><stack><layer src="data/a.png"/></stack></image>',
                    {"data/a.png": png(solid(4, 3, (7, 8, 9, 255)))}, mimetype=None)
    doc = load_ora(path).document
    assert len(doc.layers) == 1 and doc.layers[0].name == "Layer 1"
    assert tuple(doc.composite()[2, 3]) == (7, 8, 9, 255)


def test_two_layers_sharing_one_png_are_both_loaded(tmp_path: Path) -> None:
    stack = ('<image w="4" h="4"><stack><layer name="copy" src="data/a.png" x="2" y="2"/>'
             '<layer name="orig" src="data/a.png"/></stack></image>')
    path = make_ora(tmp_path / "shared.ora", stack, {"data/a.png": png(solid(2, 2, (1, 2, 3, 255)))})
    doc = load_ora(path).document
    assert [la.name for la in doc.layers] == ["orig", "copy"]
    assert tuple(doc.composite()[3, 3]) == (1, 2, 3, 255)


def test_16_bit_and_greyscale_layer_pngs_are_normalised(tmp_path: Path) -> None:
    deep = np.full((4, 4), 65535, np.uint16)
    deep[0, 0] = 32768
    grey = np.full((4, 4), 100, np.uint8)
    stack = ('<image w="4" h="4"><stack><layer name="grey" src="data/g.png" opacity="0"/>'
             '<layer name="deep" src="data/d.png"/></stack></image>')
    path = make_ora(tmp_path / "deep.ora", stack, {"data/d.png": png(deep), "data/g.png": png(grey, "L")})
    doc = load_ora(path).document
    deep_px = doc.layer_named("deep").surface.to_array()
    assert tuple(deep_px[1, 1]) == (255, 255, 255, 255)
    assert tuple(deep_px[0, 0]) == (128, 128, 128, 255)  # not clipped to white
    assert tuple(doc.layer_named("grey").surface.to_array()[2, 2]) == (100, 100, 100, 255)


def test_odd_attribute_values_fall_back_to_defaults(tmp_path: Path) -> None:
    stack = ('<image w="4" h="4"><stack>'
             '<layer name="a" src="data/a.png" opacity="nan" x="inf" y="oops"/>'
             '<layer name="b" src="data/a.png" opacity="7" x="-1e400"/>'
             '<layer name="c" src="data/a.png" opacity="-2" visibility="whatever"/>'
             '</stack></image>')
    path = make_ora(tmp_path / "odd.ora", stack, {"data/a.png": png(solid(4, 4, (1, 2, 3, 255)))})
    doc = load_ora(path).document
    by = {la.name: la for la in doc.layers}
    assert by["a"].opacity == 1.0 and by["a"].offset == (0, 0)
    assert by["b"].opacity == 1.0
    assert by["c"].opacity == 0.0 and by["c"].visible is True
    assert np.isfinite(doc.composite().astype(float)).all()


# -- hostile and damaged archives ------------------------------------------------------------------
def _expect_refused(path: Path, match: str, error: type[Exception] = OraError) -> ImageFileError:
    before = listing(path.parent)
    with pytest.raises(error, match=match) as err:
        load_ora(path)
    assert listing(path.parent) == before  # nothing extracted, nothing written
    assert isinstance(err.value, ImageFileError)
    return err.value


@pytest.mark.parametrize("bad", ["../evil.png", "/abs.png", "data/../../evil.png", "..\\evil.png", "C:/evil.png"])
def test_path_traversal_in_stack_src_is_refused(tmp_path: Path, bad: str) -> None:
    (tmp_path / "in").mkdir()
    path = make_ora(tmp_path / "in" / "t.ora", f'<image w="4" h="4"><stack><layer src="{bad}"/></stack></image>',
                    {"data/ok.png": png(solid(4, 4, (1, 1, 1, 255)))})
    (tmp_path / "evil.png").write_bytes(png(solid(4, 4, (255, 0, 0, 255))))  # a real file out there
    err = _expect_refused(path, "outside the archive|missing")
    assert bad in str(err)


@pytest.mark.parametrize("bad", ["../evil.png", "/abs.png", "data/../../x.png"])
def test_path_traversal_member_names_in_the_zip_are_refused(tmp_path: Path, bad: str) -> None:
    path = make_ora(tmp_path / "z.ora", '<image w="4" h="4"><stack><layer src="data/a.png"/></stack></image>',
                    {"data/a.png": png(solid(4, 4, (1, 1, 1, 255))), bad: b"x"})
    err = _expect_refused(path, "path traversal")
    assert bad in str(err)
    assert not (tmp_path.parent / "evil.png").exists() and not Path("/abs.png").exists()


def test_path_traversal_in_our_sidecar_is_refused(tmp_path: Path) -> None:
    doc = rich_document()
    src = zipfile.ZipFile(io.BytesIO(ora_bytes(doc)))
    path = tmp_path / "side.ora"
    with zipfile.ZipFile(path, "w") as z:
        for info in src.infolist():
            content = src.read(info)
            if info.filename == ora_module.SIDECAR:
                data = json.loads(content)
                for entry in data["layers"]:
                    if entry["kind"] == "mask":
                        entry["src"] = "../../etc/passwd"
                content = json.dumps(data).encode()
            z.writestr(info, content)
    _expect_refused(path, "outside the archive")


def test_zip_bomb_member_is_refused_before_unpacking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.ora"
    info = zipfile.ZipInfo("data/layer0.png")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), b"image/openraster")
        z.writestr("stack.xml", '<image w="4" h="4"><stack><layer src="data/layer0.png"/></stack></image>')
        with z.open(info, "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(256):  # 256 MiB of zeros, about 250 KiB packed
                f.write(chunk)
    assert path.stat().st_size < 2_000_000

    def no_reading(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("a member was unpacked")

    monkeypatch.setattr(zipfile.ZipFile, "read", no_reading)
    err = _expect_refused(path, "oversized")
    assert "data/layer0.png" in str(err) and "zip bomb" in str(err)


def test_member_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = simple_ora(tmp_path / "ok.ora")
    load_ora(path)  # fine with the real limits
    with zipfile.ZipFile(path) as z:
        sizes = [i.file_size for i in z.infolist()]
    monkeypatch.setattr(ora_module, "MAX_MEMBER_BYTES", max(sizes) - 1)
    _expect_refused(path, "oversized")
    monkeypatch.undo()
    monkeypatch.setattr(ora_module, "MAX_TOTAL_BYTES", sum(sizes) - 1)
    _expect_refused(path, "would unpack to")
    monkeypatch.undo()
    monkeypatch.setattr(ora_module, "MAX_MEMBERS", 2)
    _expect_refused(path, "members")


def test_layer_png_over_the_pixel_limit_is_refused(tmp_path: Path) -> None:
    path = simple_ora(tmp_path / "big.ora", layer_png=png_claiming_size(20000, 20000))
    err = _expect_refused(path, "20000x20000", ImageTooLargeError)
    assert "data/layer0.png" in str(err)
    path2 = simple_ora(tmp_path / "small.ora", w=30, h=30)
    with pytest.raises(ImageTooLargeError):
        load_ora(path2, max_pixels=899)
    assert len(load_ora(path2, max_pixels=900).document.layers) == 1


def test_document_size_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = make_ora(tmp_path / "huge.ora", '<image w="30000" h="30000"><stack/></image>', {})
    _expect_refused(path, "30000x30000", ImageTooLargeError)


def test_sidecar_geometry_over_the_limit_is_refused(tmp_path: Path) -> None:
    doc = Document(8, 8)
    doc.add_raster(solid(8, 8, (1, 1, 1, 255)))
    src = zipfile.ZipFile(io.BytesIO(ora_bytes(doc)))
    path = tmp_path / "geom.ora"
    with zipfile.ZipFile(path, "w") as z:
        for info in src.infolist():
            content = src.read(info)
            if info.filename == ora_module.SIDECAR:
                data = json.loads(content)
                data["layers"][0].update(w=1_000_000, h=1_000_000)
                content = json.dumps(data).encode()
            z.writestr(info, content)
    _expect_refused(path, "1000000x1000000", ImageTooLargeError)


def test_damaged_zips(tmp_path: Path) -> None:
    good = simple_ora(tmp_path / "good.ora").read_bytes()
    truncated = tmp_path / "truncated.ora"
    truncated.write_bytes(good[: len(good) // 2])
    _expect_refused(truncated, "damaged")
    garbage = tmp_path / "garbage.ora"
    garbage.write_bytes(b"this is not a zip file at all" * 10)
    _expect_refused(garbage, "not an OpenRaster file|damaged")
    empty = tmp_path / "empty.ora"
    empty.write_bytes(b"")
    _expect_refused(empty, "damaged")
    _expect_refused(tmp_path / "missing.ora", "does not exist")


def _header_offsets(data: bytes, name: str) -> tuple[int, int]:
    """Offsets of a member's local header and central directory entry."""
    z = zipfile.ZipFile(io.BytesIO(data))
    local = z.getinfo(name).header_offset
    encoded = name.encode()
    pos = 0
    while True:
        pos = data.index(b"PK\x01\x02", pos)
        if data[pos + 46 : pos + 46 + len(encoded)] == encoded:
            return local, pos
        pos += 4


def test_damaged_compressed_data_is_refused(tmp_path: Path) -> None:
    stack = '<image w="4" h="4"><stack><layer src="data/a.png"/></stack></image>' + "<!-- padding -->" * 50
    good = make_ora(tmp_path / "g.ora", stack, {"data/a.png": png(solid(4, 4, (1, 1, 1, 255)))}).read_bytes()
    local, _ = _header_offsets(good, "stack.xml")
    data_start = local + 30 + len("stack.xml")
    bad = bytearray(good)
    bad[data_start : data_start + 6] = b"\xff" * 6  # an invalid deflate block
    path = tmp_path / "bad.ora"
    path.write_bytes(bytes(bad))
    _expect_refused(path, "damaged")


def test_encrypted_and_unknown_compression_members_are_refused(tmp_path: Path) -> None:
    good = simple_ora(tmp_path / "g.ora").read_bytes()
    local, central = _header_offsets(good, "stack.xml")
    encrypted = bytearray(good)
    encrypted[local + 6] |= 1  # general purpose flag bit 0: encrypted
    encrypted[central + 8] |= 1
    (tmp_path / "enc.ora").write_bytes(bytes(encrypted))
    _expect_refused(tmp_path / "enc.ora", "encrypted")
    unknown = bytearray(good)
    unknown[local + 8 : local + 10] = (99).to_bytes(2, "little")  # compression method 99
    unknown[central + 10 : central + 12] = (99).to_bytes(2, "little")
    (tmp_path / "unk.ora").write_bytes(bytes(unknown))
    _expect_refused(tmp_path / "unk.ora", "compression")


@pytest.mark.parametrize(
    ("stack", "match"),
    [
        ("<image w='4' h='4'><stack><layer src='data/a.png'></stack></image>", "damaged stack.xml"),
        ("not xml at all", "damaged stack.xml"),
        ("", "damaged stack.xml"),
        ("<picture w='4' h='4'><stack/></picture>", "no <image><stack>"),
        ("<image w='4' h='4'><layer src='data/a.png'/></image>", "no <image><stack>"),
        ("<image w='0' h='4'><stack/></image>", "invalid image size"),
        ("<image w='abc' h='4'><stack/></image>", "invalid image size"),
        ("<image w='4' h='4'><stack><layer src='data/a.svg'/></stack></image>", "no PNG source"),
        ("<image w='4' h='4'><stack><layer src='data/missing.png'/></stack></image>", "missing"),
        ("<image w='4' h='4'><stack><layer name='no src'/></stack></image>", "no PNG source"),
        ("<image w='40000' h='1'><stack/></image>", "damaged|32768"),
    ],
)
def test_damaged_stack_xml(tmp_path: Path, stack: str, match: str) -> None:
    path = make_ora(tmp_path / "s.ora", stack, {"data/a.png": png(solid(4, 4, (1, 1, 1, 255))),
                                                "data/a.svg": b"<svg/>"})
    _expect_refused(path, match)


def test_entity_expansion_bomb_in_stack_xml_is_refused(tmp_path: Path) -> None:
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    stack = f'<?xml version="1.0"?><!DOCTYPE image [<!ENTITY e0 "lol">{entities}]><image w="4" h="4" n="&e9;"/>'
    _expect_refused(make_ora(tmp_path / "lol.ora", stack, {}), "damaged stack.xml")


def test_deeply_nested_groups_are_refused_cleanly(tmp_path: Path) -> None:
    depth = 5000
    stack = '<image w="4" h="4">' + "<stack>" * depth + "</stack>" * depth + "</image>"
    _expect_refused(make_ora(tmp_path / "deep.ora", stack, {}), "too deeply|damaged")


def test_wrong_mimetype_is_refused(tmp_path: Path) -> None:
    path = make_ora(tmp_path / "m.ora", '<image w="4" h="4"><stack/></image>', {}, mimetype=b"application/zip")
    _expect_refused(path, "mimetype")


def test_missing_stack_xml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nostack.ora"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", b"image/openraster")
        z.writestr("mergedimage.png", png(solid(2, 2, (0, 0, 0, 255))))
    _expect_refused(path, "stack.xml")


def test_damaged_layer_png_names_the_member(tmp_path: Path) -> None:
    good = png(RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8))
    err = _expect_refused(simple_ora(tmp_path / "cut.ora", layer_png=good[: len(good) // 2], w=16, h=16),
                          "damaged|truncated|could not be read")
    assert "data/layer0.png" in str(err)
    err = _expect_refused(simple_ora(tmp_path / "text.ora", layer_png=b"not a png"), "not a PNG image")
    assert "data/layer0.png" in str(err)
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    _expect_refused(simple_ora(tmp_path / "jpeg.ora", layer_png=jpeg.getvalue()), "not a PNG image")


@pytest.mark.parametrize(
    "sidecar",
    [b"{not json", b"[1, 2, 3]", b'{"layers": {"a": 1}}', b'{"layers": [{"kind": "mask"}]}',
     b'{"layers": [{"kind": "mask", "src": "diffedit/none.png"}]}', b'{"layers": [17]}',
     b'{"version": "two", "layers": []}'],
)
def test_damaged_sidecar_is_refused(tmp_path: Path, sidecar: bytes) -> None:
    path = make_ora(tmp_path / "side.ora", '<image w="4" h="4"><stack><layer src="data/a.png"/></stack></image>',
                    {"data/a.png": png(solid(4, 4, (1, 1, 1, 255))), ora_module.SIDECAR: sidecar})
    err = _expect_refused(path, "damaged|missing|not a valid file name")
    assert "side.ora" in str(err)


def test_newer_sidecar_version_loads_with_a_note(tmp_path: Path) -> None:
    path = make_ora(tmp_path / "new.ora", '<image w="4" h="4"><stack><layer src="data/a.png"/></stack></image>',
                    {"data/a.png": png(solid(4, 4, (1, 1, 1, 255))),
                     ora_module.SIDECAR: json.dumps({"version": 99, "layers": []}).encode()})
    loaded = load_ora(path)
    assert len(loaded.document.layers) == 1
    assert any("newer DiffEdit" in n for n in loaded.notes)


def test_saving_requires_the_ora_extension(tmp_path: Path) -> None:
    doc = rich_document()
    with pytest.raises(ImageFileError, match=r"\.ora"):
        save_document(doc, tmp_path / "doc.png")
    assert list(tmp_path.iterdir()) == []
