"""Flat image files: reading PNG/JPEG/WebP/TIFF/BMP into RGBA 8-bit with notes, and exporting."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from diffedit.document import Document, GenerationRecord, MaskLayer
from diffedit.document.imagefiles import (
    ImageFileError,
    ImageTooLargeError,
    export_format,
    read_image,
)
from diffedit.document.io import export_image, open_document

RNG = np.random.default_rng(1234)


# -- helpers ---------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming_size(width: int, height: int, bit_depth: int = 1, colour_type: int = 0) -> bytes:
    """A tiny PNG whose IHDR claims width x height; the image data is only a few bytes (garbage)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def save(img: Image.Image, path: Path, fmt: str, **kwargs: object) -> Path:
    img.save(path, fmt, **kwargs)
    return path


@pytest.fixture
def rgb() -> np.ndarray:
    # smooth content, so lossy codecs stay close to the source
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)


# -- reading the five formats ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ext", "fmt", "lossless"),
    [
        ("png", "PNG", True),
        ("jpg", "JPEG", False),
        ("webp", "WEBP", False),
        ("tif", "TIFF", True),
        ("bmp", "BMP", True),
    ],
)
def test_reads_each_format_as_rgba_uint8(
    tmp_path: Path, rgb: np.ndarray, ext: str, fmt: str, lossless: bool
) -> None:
    path = save(Image.fromarray(rgb, "RGB"), tmp_path / f"a.{ext}", fmt)
    loaded = read_image(path)
    assert loaded.format == fmt
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.shape == (48, 64, 4)
    assert (loaded.pixels[..., 3] == 255).all()
    diff = np.abs(loaded.pixels[..., :3].astype(int) - rgb.astype(int))
    if lossless:
        assert diff.max() == 0
    else:
        assert diff.mean() < 4
    assert loaded.notes == []  # plain RGB needs no normalisation


def test_rgba_png_keeps_alpha_exactly_without_notes(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    path = save(Image.fromarray(pixels, "RGBA"), tmp_path / "a.png", "PNG")
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert loaded.notes == []


def test_rgba_webp_lossless_keeps_alpha(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    pixels[..., 3] = np.where(pixels[..., 3] > 128, 255, 0)
    pixels[pixels[..., 3] == 0] = 0
    path = save(Image.fromarray(pixels, "RGBA"), tmp_path / "a.webp", "WEBP", lossless=True, exact=True)
    np.testing.assert_array_equal(read_image(path).pixels, pixels)


# -- odd inputs are normalised, with notes ---------------------------------------------------------
def test_exif_orientation_6_is_applied_and_noted(tmp_path: Path) -> None:
    # stored 60 wide x 40 high; a red block in the stored top-left corner, the rest blue
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[...] = (0, 0, 255)
    stored[:10, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(Image.fromarray(stored, "RGB"), tmp_path / "photo.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    loaded = read_image(path)
    assert loaded.pixels.shape == (60, 40, 4)  # now 40 wide, 60 high
    # turning clockwise moves the stored top-left corner to the top-right
    top_right = loaded.pixels[2:8, -8:-2, :3].mean(axis=(0, 1))
    top_left = loaded.pixels[2:8, 2:8, :3].mean(axis=(0, 1))
    assert top_right[0] > 200 and top_right[2] < 60
    assert top_left[2] > 200 and top_left[0] < 60
    assert any("EXIF orientation" in n and "6" in n for n in loaded.notes)


def test_exif_orientation_1_changes_nothing(tmp_path: Path, rgb: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 1
    path = save(Image.fromarray(rgb, "RGB"), tmp_path / "a.png", "PNG", exif=exif.tobytes())
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded.pixels[..., :3], rgb)
    assert not any("orientation" in n for n in loaded.notes)


def test_16_bit_greyscale_png_is_scaled_to_8_bit(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32768, 65535], [1000, 20000, 40000, 60000]], np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png", "PNG")
    with Image.open(path) as check:
        assert check.mode == "I;16"  # the file really is 16-bit greyscale
    loaded = read_image(path)
    expected = np.rint(values / 65535 * 255).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(loaded.pixels[..., c], expected)
    assert (loaded.pixels[..., 3] == 255).all()
    assert any("16-bit" in n for n in loaded.notes)


def test_palette_png_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    img = Image.new("P", (8, 4))
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2, 1] * 8)
    path = save(img, tmp_path / "pal.png", "PNG", transparency=0)
    loaded = read_image(path)
    px = loaded.pixels
    assert tuple(px[0, 0]) == (0, 0, 0, 0)  # index 0 is transparent
    assert tuple(px[0, 1]) == (255, 0, 0, 255)
    assert tuple(px[0, 2]) == (0, 255, 0, 255)
    assert any("palette" in n for n in loaded.notes)
    assert any("transparency" in n for n in loaded.notes)


def test_palette_png_without_transparency_is_opaque(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * (256 * 3 - 6))
    loaded = read_image(save(img, tmp_path / "pal.png", "PNG"))
    assert (loaded.pixels == (10, 20, 30, 255)).all()
    assert any("palette" in n for n in loaded.notes)
    assert not any("transparency" in n for n in loaded.notes)


def test_greyscale_l_becomes_grey_rgb(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    loaded = read_image(save(Image.fromarray(grey, "L"), tmp_path / "g.png", "PNG"))
    for c in range(3):
        np.testing.assert_array_equal(loaded.pixels[..., c], grey)
    assert (loaded.pixels[..., 3] == 255).all()
    assert any("greyscale" in n for n in loaded.notes)


def test_greyscale_la_keeps_its_alpha(tmp_path: Path) -> None:
    la = RNG.integers(0, 256, (10, 12, 2), dtype=np.uint8)
    loaded = read_image(save(Image.fromarray(la, "LA"), tmp_path / "la.png", "PNG"))
    np.testing.assert_array_equal(loaded.pixels[..., 0], la[..., 0])
    np.testing.assert_array_equal(loaded.pixels[..., 2], la[..., 0])
    np.testing.assert_array_equal(loaded.pixels[..., 3], la[..., 1])
    assert any("greyscale" in n for n in loaded.notes)
    assert any("transparency" in n for n in loaded.notes)


def test_one_bit_image_is_black_and_white(tmp_path: Path) -> None:
    bits = np.zeros((4, 8), bool)
    bits[:, 4:] = True
    loaded = read_image(save(Image.fromarray(bits), tmp_path / "bw.png", "PNG"))
    assert (loaded.pixels[:, :4, :3] == 0).all() and (loaded.pixels[:, 4:, :3] == 255).all()
    assert any("1-bit" in n for n in loaded.notes)


@pytest.mark.parametrize(("ext", "fmt", "tolerance"), [("jpg", "JPEG", 6), ("tif", "TIFF", 0)])
def test_cmyk_becomes_rgb(tmp_path: Path, ext: str, fmt: str, tolerance: int) -> None:
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, 16:] = (255, 0, 0, 0)  # cyan on the right, white (no ink) on the left
    path = save(Image.fromarray(cmyk, "CMYK"), tmp_path / f"c.{ext}", fmt)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    loaded = read_image(path)
    white = loaded.pixels[4:12, 2:12, :3].astype(int)
    cyan = loaded.pixels[4:12, 20:30, :3].astype(int)
    assert np.abs(white - 255).max() <= tolerance
    assert np.abs(cyan - np.array([0, 255, 255])).max() <= tolerance
    assert (loaded.pixels[..., 3] == 255).all()
    assert any("CMYK" in n for n in loaded.notes)


def test_broken_colour_profile_is_ignored_with_a_note(tmp_path: Path, rgb: np.ndarray) -> None:
    path = save(Image.fromarray(rgb, "RGB"), tmp_path / "icc.png", "PNG", icc_profile=b"not a real profile")
    loaded = read_image(path)
    np.testing.assert_array_equal(loaded.pixels[..., :3], rgb)
    assert any("colour profile" in n for n in loaded.notes)


def test_png_text_chunks_are_returned(tmp_path: Path, rgb: np.ndarray) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Seed: 1")
    path = save(Image.fromarray(rgb, "RGB"), tmp_path / "p.png", "PNG", pnginfo=info)
    assert read_image(path).info["parameters"] == "a cat\nSteps: 20, Seed: 1"
    opened = open_document(path)
    assert opened.document.metadata["parameters"] == "a cat\nSteps: 20, Seed: 1"


def test_open_document_makes_one_layer_document(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    path = save(Image.fromarray(pixels, "RGBA"), tmp_path / "photo.png", "PNG")
    opened = open_document(path)
    doc = opened.document
    assert (doc.width, doc.height, doc.name, doc.path) == (7, 9, "photo", str(path))
    assert len(doc.layers) == 1 and doc.active is doc.layers[0]
    np.testing.assert_array_equal(doc.layers[0].surface.to_array(), pixels)
    assert not doc.modified


# -- pixel limit -----------------------------------------------------------------------------------
def test_huge_header_is_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(20000, 20000))
    assert path.stat().st_size < 200

    def no_decoding(self: object) -> None:
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError, match="20000x20000") as err:
        read_image(path)  # default limit: 100 MP < 400 MP
    assert "limit" in str(err.value)


def test_configurable_limit(tmp_path: Path, rgb: np.ndarray) -> None:
    path = save(Image.fromarray(rgb, "RGB"), tmp_path / "a.png", "PNG")  # 64 x 48 = 3072 px
    with pytest.raises(ImageTooLargeError, match="64x48"):
        read_image(path, max_pixels=3071)
    assert read_image(path, max_pixels=3072).pixels.shape == (48, 64, 4)
    with pytest.raises(ImageTooLargeError):
        open_document(path, max_pixels=1000)


def test_our_limit_replaces_pillows_and_leaves_it_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would call this a bomb
    assert read_image(path, max_pixels=20_000).pixels.shape == (100, 100, 4)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_image_wider_than_a_document_can_be_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    Image.new("1", (40000, 1), 1).save(path)
    with pytest.raises(ImageFileError, match="40000x1"):
        open_document(path)


# -- damaged files and non-images ------------------------------------------------------------------
@pytest.mark.parametrize(("ext", "fmt"), [("png", "PNG"), ("jpg", "JPEG"), ("tif", "TIFF"), ("bmp", "BMP")])
def test_truncated_files_give_image_file_error(tmp_path: Path, rgb: np.ndarray, ext: str, fmt: str) -> None:
    full = save(Image.fromarray(rgb, "RGB"), tmp_path / f"full.{ext}", fmt).read_bytes()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ImageFileError) as err:
        read_image(path)
    assert "cut." in str(err.value)
    assert "truncated" in str(err.value).lower() or "could not be read" in str(err.value)


def test_corrupt_png_data_gives_image_file_error(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = bytearray(save(Image.fromarray(pixels, "RGB"), tmp_path / "ok.png", "PNG").read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 40] = b"\xff" * 32  # wreck the compressed stream
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match="damaged"):
        read_image(path)


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"hello, I am text\n", "notes.png"), (b"", "empty.jpg"), (b"PK\x03\x04" + b"\0" * 40, "zip.webp")],
)
def test_non_images_give_a_clear_message(tmp_path: Path, content: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageFileError, match="not an image DiffEdit can read"):
        read_image(path)


def test_formats_outside_the_list_are_not_decoded(tmp_path: Path) -> None:
    # Pillow would open this as EPS and, on load, hand it to Ghostscript; we must not even try
    path = tmp_path / "innocent.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n")
    with Image.open(path) as pil:
        assert pil.format == "EPS"
    with pytest.raises(ImageFileError, match="not an image DiffEdit can read"):
        read_image(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="does not exist"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageFileError, match="folder"):
        read_image(tmp_path)


# -- export ----------------------------------------------------------------------------------------
RECORD = GenerationRecord(
    task="txt2img",
    model="tiny-unet",
    model_hash="0123456789abcdef",
    sampler="ddim",
    steps=20,
    seed=42,
    params={"prompt": "a red fox, snow", "negative_prompt": "blurry", "guidance_scale": 7.5, "width": 64,
            "height": 48, "eta": 0.0},
)


def _export_doc() -> Document:
    doc = Document(64, 48, name="scene")
    bottom = doc.add_raster(np.full((48, 64, 4), (30, 60, 90, 255), np.uint8), name="sky")
    bottom.record = GenerationRecord(task="background", seed=7)
    top = np.zeros((20, 30, 4), np.uint8)
    top[...] = (250, 40, 10, 160)
    fox = doc.add_raster(top, name="fox", offset=(10, 12))
    fox.record = RECORD
    hidden = doc.add_raster(np.full((48, 64, 4), 255, np.uint8), name="hidden")
    hidden.record = GenerationRecord(task="hidden-task")
    doc.set_property(hidden, "visible", False)
    mask = MaskLayer.empty(64, 48, "segmentation", role="segment")
    mask.record = GenerationRecord(task="segment")
    doc.add_layer(mask)  # a mask on top: it is not in the image, so its record must not be `parameters`
    return doc


def test_export_png_pixels_and_text_chunks(tmp_path: Path) -> None:
    doc = _export_doc()
    out = export_image(doc, tmp_path / "out.png")
    data = out.read_bytes()
    with Image.open(out) as img:
        assert img.format == "PNG" and img.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(img), doc.composite())
        text = dict(img.text)
    assert text["parameters"] == RECORD.to_parameters_text()
    lines = text["parameters"].split("\n")
    assert lines[0] == "a red fox, snow"
    assert lines[1] == "Negative prompt: blurry"
    settings = dict(item.split(": ", 1) for item in lines[2].split(", "))
    assert settings["Steps"] == "20" and settings["Sampler"] == "ddim" and settings["Seed"] == "42"
    assert settings["CFG scale"] == "7.5" and settings["Size"] == "64x48"
    assert settings["Model hash"] == "0123456789" and settings["Model"] == "tiny-unet"
    # AUTOMATIC1111 writes `parameters` as a plain tEXt chunk, which every reader understands
    chunks = png_chunks(data)
    assert any(kind == b"tEXt" and payload.startswith(b"parameters\0") for kind, payload in chunks)
    ours = json.loads(text["diffedit"])
    assert ours["version"]
    by_layer = {e["layer"]: GenerationRecord.from_json(e["record"]) for e in ours["layers"]}
    assert by_layer["fox"] == RECORD
    assert by_layer["sky"] == GenerationRecord(task="background", seed=7)
    assert "hidden" not in by_layer  # not in the image


def test_export_parameters_never_come_from_a_mask(tmp_path: Path) -> None:
    doc = _export_doc()
    doc.delete_layer(doc.layer_named("fox"))
    with Image.open(export_image(doc, tmp_path / "out.png")) as img:
        params = img.text["parameters"]
    assert "Task: background" in params
    assert "segment" not in params


def test_export_non_latin_parameters_survive(tmp_path: Path) -> None:
    doc = Document(4, 4)
    layer = doc.add_raster(np.full((4, 4, 4), 255, np.uint8))
    layer.record = GenerationRecord(task="txt2img", params={"prompt": "café ☕ 猫"})
    with Image.open(export_image(doc, tmp_path / "u.png")) as img:
        assert img.text["parameters"].split("\n")[0] == "café ☕ 猫"


def test_export_uses_document_parameters_when_no_layer_has_a_record(tmp_path: Path) -> None:
    doc = Document(4, 4)
    doc.add_raster(np.full((4, 4, 4), 255, np.uint8))
    doc.metadata["parameters"] = "from another tool\nSteps: 5"
    with Image.open(export_image(doc, tmp_path / "m.png")) as img:
        assert img.text["parameters"] == "from another tool\nSteps: 5"
        assert "diffedit" not in img.text


@pytest.mark.parametrize(("name", "fmt"), [("out.jpg", "JPEG"), ("OUT.JPEG", "JPEG"), ("out.webp", "WEBP")])
def test_export_lossy_formats_by_extension(tmp_path: Path, name: str, fmt: str) -> None:
    doc = _export_doc()
    out = export_image(doc, tmp_path / name)
    with Image.open(out) as img:
        assert img.format == fmt
        assert img.size == (64, 48)
        got = np.asarray(img.convert("RGBA")).astype(int)
    expected = doc.composite().astype(int)
    if fmt == "JPEG":  # no alpha in JPEG: transparency is put on white
        a = expected[..., 3:4] / 255
        expected = np.concatenate([np.rint(expected[..., :3] * a + 255 * (1 - a)), np.full_like(a, 255)], -1)
    assert np.abs(got - expected).mean() < 3


def test_export_transparent_areas_to_jpeg_become_white(tmp_path: Path) -> None:
    doc = Document(16, 16)
    doc.add_raster(np.zeros((16, 16, 4), np.uint8))
    with Image.open(export_image(doc, tmp_path / "w.jpg")) as img:
        assert np.asarray(img).min() >= 250


@pytest.mark.parametrize("name", ["out.gif", "out.txt", "out", "out.png.bak", "out.tif"])
def test_export_bad_extension_is_clear_and_writes_nothing(tmp_path: Path, name: str) -> None:
    doc = _export_doc()
    with pytest.raises(ImageFileError, match=r"use a \.png, \.jpg or \.webp"):
        export_image(doc, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ImageFileError):
        export_format(name)


def test_exported_png_reads_back_through_read_image(tmp_path: Path) -> None:
    doc = _export_doc()
    loaded = read_image(export_image(doc, tmp_path / "again.png"))
    np.testing.assert_array_equal(loaded.pixels, doc.composite())
    assert loaded.info["parameters"] == RECORD.to_parameters_text()
    assert loaded.notes == []


def test_png_bytes_helper_agrees_with_pillow() -> None:
    data = png_claiming_size(3, 2, 8, 2)
    kinds = [k for k, _ in png_chunks(data)]
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (3, 2)
