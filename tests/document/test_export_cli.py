"""`diffedit export IN OUT`: as a process and through main(); errors are one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffedit.__main__ import main
from diffedit.document import Document, GenerationRecord, MaskLayer
from diffedit.document.ora import save_ora

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "diffedit", "export", *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False,
    )


def assert_one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("diffedit export: error: ")
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def layered(tmp_path: Path) -> tuple[Path, Document]:
    doc = Document(40, 30, name="layered")
    doc.add_raster(np.full((30, 40, 4), (0, 0, 200, 255), np.uint8), name="bg")
    top = doc.add_raster(np.full((10, 10, 4), (255, 255, 0, 128), np.uint8), name="top", offset=(5, 5))
    top.record = GenerationRecord(task="txt2img", seed=11, steps=4, sampler="euler", params={"prompt": "sun"})
    doc.add_layer(MaskLayer.empty(40, 30, "mask", role="inpaint"))
    return save_ora(doc, tmp_path / "layered.ora"), doc


@pytest.fixture
def flat_png(tmp_path: Path) -> Path:
    pixels = np.random.default_rng(3).integers(0, 256, (12, 20, 4), dtype=np.uint8)
    path = tmp_path / "flat.png"
    Image.fromarray(pixels, "RGBA").save(path)
    return path


# -- as a process ----------------------------------------------------------------------------------
def test_process_exports_ora_to_png(tmp_path: Path, layered: tuple[Path, Document]) -> None:
    src, doc = layered
    out = tmp_path / "flat.png"
    result = run_cli(src, out)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "40x30" in result.stdout
    with Image.open(out) as img:
        assert img.format == "PNG"
        np.testing.assert_array_equal(np.asarray(img), doc.composite())
        assert img.text["parameters"].startswith("sun\n")
        assert "diffedit" in img.text


def test_process_exports_png_to_jpeg_and_webp(tmp_path: Path, flat_png: Path) -> None:
    for name, fmt in (("a.jpg", "JPEG"), ("a.webp", "WEBP")):
        result = run_cli(flat_png, tmp_path / name)
        assert result.returncode == 0, result.stderr
        with Image.open(tmp_path / name) as img:
            assert img.format == fmt and img.size == (20, 12)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing.png", ("missing.png", "does not exist")),
        (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png", ("not an image",)),
        (lambda d: (d / "bad.ora").write_bytes(b"PK\x03\x04broken") and d / "bad.ora", ("bad.ora", "damaged")),
    ],
)
def test_process_bad_input_is_one_line(tmp_path: Path, make, words: tuple[str, ...]) -> None:
    src = make(tmp_path)
    result = run_cli(src, tmp_path / "out.png")
    assert result.returncode != 0
    assert_one_line_error(result.stderr, *words)
    assert not (tmp_path / "out.png").exists()


def test_process_bad_output_extension_is_one_line(tmp_path: Path, flat_png: Path) -> None:
    result = run_cli(flat_png, tmp_path / "out.gif")
    assert result.returncode != 0
    assert_one_line_error(result.stderr, ".gif", ".png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.png"]


# -- through main() --------------------------------------------------------------------------------
def test_main_exports_by_extension(tmp_path: Path, layered: tuple[Path, Document], capsys) -> None:
    src, _doc = layered
    for name, fmt in (("o.png", "PNG"), ("o.jpeg", "JPEG"), ("o.webp", "WEBP")):
        assert main(["export", str(src), str(tmp_path / name)]) == 0
        with Image.open(tmp_path / name) as img:
            assert img.format == fmt and img.size == (40, 30)
    assert "wrote" in capsys.readouterr().out


def test_main_png_input_keeps_pixels(tmp_path: Path, flat_png: Path) -> None:
    out = tmp_path / "copy.png"
    assert main(["export", str(flat_png), str(out)]) == 0
    with Image.open(flat_png) as a, Image.open(out) as b:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_main_notes_go_to_stderr(tmp_path: Path, capsys) -> None:
    grey = tmp_path / "grey.png"
    Image.new("L", (8, 8), 99).save(grey)
    assert main(["export", str(grey), str(tmp_path / "g.png")]) == 0
    captured = capsys.readouterr()
    assert "note: converted greyscale to RGB" in captured.err
    assert "wrote" in captured.out


def _damaged_ora(d: Path) -> Path:
    path = d / "hostile.ora"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "image/openraster")
        z.writestr("stack.xml", '<image w="4" h="4"><stack><layer src="../../evil.png"/></stack></image>')
    return path


def _too_wide(d: Path) -> Path:
    path = d / "strip.png"
    Image.new("1", (40000, 1)).save(path)
    return path


@pytest.mark.parametrize(
    ("make", "extra", "words"),
    [
        (lambda d: d / "nope.ora", [], ("nope.ora", "does not exist")),
        (_damaged_ora, [], ("path traversal",)),
        (lambda d: d, [], ("folder",)),
        (_too_wide, [], ("40000x1",)),
        (lambda d: (Image.new("RGB", (50, 50)).save(d / "big.png"), d / "big.png")[1], ["--max-pixels", "100"],
         ("50x50", "limit")),
    ],
)
def test_main_bad_input_is_one_line(tmp_path: Path, make, extra: list[str], words: tuple[str, ...],
                                    capsys) -> None:
    src = make(tmp_path)
    out = tmp_path / "result.png"
    assert main(["export", str(src), str(out), *extra]) == 1
    captured = capsys.readouterr()
    assert_one_line_error(captured.err, *words)
    assert captured.out == ""
    assert not out.exists()


def test_main_bad_output_extension_fails_before_reading_the_input(tmp_path: Path, capsys) -> None:
    # the input does not even exist: the OUT name is checked first, so the reason is about OUT
    assert main(["export", str(tmp_path / "missing.png"), str(tmp_path / "out.bmp")]) == 1
    assert_one_line_error(capsys.readouterr().err, ".bmp")


def test_main_unwritable_output_is_one_line(tmp_path: Path, flat_png: Path, capsys) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("I am a file, not a folder")
    assert main(["export", str(flat_png), str(blocker / "out.png")]) == 1
    assert_one_line_error(capsys.readouterr().err, "could not write", "out.png")


def test_export_is_listed_in_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--help"])
    assert exit_info.value.code == 0
    assert "IN" in capsys.readouterr().out
