"""`diffedit run` with the built-in tasks: output carries the record; bad input writes nothing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffedit", "run", *args], capture_output=True, text=True,
                          timeout=300)


def test_run_generate_and_inpaint_from_the_command_line(checkpoint, photo, hole, tmp_path: Path) -> None:
    out = tmp_path / "gen.png"
    done = _run("generate", "--model", checkpoint("class"), "--out", str(out), "--steps", "3", "--seed", "5",
                "--class-name", "dog", "--quiet")
    assert done.returncode == 0, done.stderr
    img = Image.open(out)
    record = json.loads(img.info["diffedit"])["layers"][0]["record"]
    assert img.size == (32, 32) and record["seed"] == 5 and record["params"]["class_name"] == "dog"
    assert "Seed: 5" in img.info["parameters"] and "Sampler: ddim" in img.info["parameters"]

    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(hole).save(tmp_path / "mask.png")
    out = tmp_path / "inpainted.png"
    done = _run("inpaint", "--model", checkpoint("inpaint"), "--image", str(tmp_path / "photo.png"), "--mask",
                str(tmp_path / "mask.png"), "--out", str(out), "--steps", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    result = np.asarray(Image.open(out).convert("RGBA"))
    assert np.array_equal(result[hole == 0], photo[hole == 0])


def test_bad_input_exits_1_with_one_line_and_no_output(checkpoint, photo, tmp_path: Path) -> None:
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "small-mask.png")
    out = tmp_path / "never.png"
    cases = [
        (["inpaint", "--model", checkpoint("inpaint"), "--image", str(tmp_path / "photo.png"), "--mask",
          str(tmp_path / "small-mask.png")], "the mask is 8x8 but the image is 56x40"),
        (["generate", "--model", checkpoint("generate"), "--sampler", "nope"], "unknown sampler 'nope'"),
        (["generate", "--model", str(tmp_path / "missing")], "missing"),
        (["generate", "--model", checkpoint("generate"), "--steps", "-1"], "steps must be at least 0"),
        (["restore", "--model", checkpoint("generate"), "--image", str(tmp_path / "photo.png")],
         "is a 'generate' model"),
    ]
    for args, message in cases:
        done = _run(*args, "--out", str(out), "--quiet")
        assert done.returncode == 1, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, done.stderr)
        assert not out.exists()
