"""The models that ship in resources/models: complete provenance, intact weights, chosen by default,
and useful: the figures on held-out photos are benchmarks/quality.py's; these are quick checks on a
crop of coffee.png (in the repair model's training set, so only sanity, never the evidence)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffedit.diffusion.checkpoints import inspect_checkpoint, read_manifest, verify_hashes
from diffedit.metrics.image_quality import psnr
from diffedit.models_registry import SHIPPED_MODELS, default_model_for, find_models
from diffedit.training import degrade

pytestmark = pytest.mark.shipped_models

SHIPPED = sorted(p for p in SHIPPED_MODELS.iterdir() if (p / "diffedit.json").is_file())
PROVENANCE_KEYS = ("command", "rebuild", "data", "data_licenses", "steps", "seed", "hardware", "training_seconds",
                   "evaluation")
SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "samples" / "coffee.png"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "diffedit", "run", *args, "--quiet"], capture_output=True,
                          text=True, timeout=600, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})


def _crop(size: int = 96) -> np.ndarray:
    with Image.open(SAMPLE) as img:
        rgb = np.asarray(img.convert("RGB"))
    return rgb[100 : 100 + size, 200 : 200 + size].copy()


def test_the_shipped_models_are_there_small_and_described() -> None:
    names = {p.name for p in SHIPPED}
    assert {"repair", "digits", "textures"} <= names
    total = sum(f.stat().st_size for p in SHIPPED for f in p.rglob("*") if f.is_file())
    assert total < 40 * 2**20  # tens of MB in all
    for folder in SHIPPED:
        manifest = read_manifest(folder)
        assert manifest.license and manifest.source, folder
        provenance = json.loads((folder / "provenance.json").read_text())
        assert all(provenance.get(k) not in (None, "") for k in PROVENANCE_KEYS if k != "evaluation"), folder
        assert provenance["command"].startswith("diffedit train ") and provenance["steps"] == manifest.made.steps
        checked = verify_hashes(*inspect_checkpoint(folder))  # raises on a file that does not match
        assert checked and set(checked) == set(manifest.made.weights_sha256), folder


def test_every_task_of_issue_8_has_a_default_model() -> None:
    found = {e.name: e for e in find_models([SHIPPED_MODELS])}
    for task in ("restore", "super-resolve", "inpaint"):
        assert default_model_for(task, [SHIPPED_MODELS]) == str(found["repair"].path)
    assert default_model_for("generate", [SHIPPED_MODELS]) == str(found["digits"].path)


def test_restore_without_flags_removes_noise_from_a_photo(tmp_path: Path) -> None:
    clean = _crop()
    noisy = degrade.gaussian_noise(clean, np.random.default_rng(0), 25.0)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    done = _run("restore", "--image", str(tmp_path / "noisy.png"), "--out", str(tmp_path / "out.png"), "--seed", "0")
    assert done.returncode == 0, done.stderr
    out = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"))
    assert psnr(clean, out) > psnr(clean, noisy) + 4.0


def test_super_resolve_and_inpaint_with_the_default_model(tmp_path: Path) -> None:
    clean = _crop()
    small = degrade.downscale(clean, 2)
    Image.fromarray(small).save(tmp_path / "small.png")
    done = _run("super-resolve", "--image", str(tmp_path / "small.png"), "--out", str(tmp_path / "up.png"),
                "--scale", "2", "--seed", "0")
    assert done.returncode == 0, done.stderr
    up = np.asarray(Image.open(tmp_path / "up.png").convert("RGB"))
    # sanity only (the evidence is benchmarks/quality.py): the correction of bicubic stays close to it
    assert up.shape == clean.shape and psnr(clean, up) > psnr(clean, degrade.upsample(small, 2)) - 0.5
    mask = np.zeros(clean.shape[:2], np.uint8)
    mask[30:60, 40:62] = 255
    Image.fromarray(clean).save(tmp_path / "clean.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    done = _run("inpaint", "--image", str(tmp_path / "clean.png"), "--mask", str(tmp_path / "mask.png"),
                "--out", str(tmp_path / "filled.png"), "--seed", "0")
    assert done.returncode == 0, done.stderr
    filled = np.asarray(Image.open(tmp_path / "filled.png").convert("RGB"))
    assert np.array_equal(filled[mask == 0], clean[mask == 0])  # outside the hole: untouched
    hole_error = np.abs(filled[mask > 0].astype(float) - clean[mask > 0]).mean()
    assert hole_error < 20  # a fill that continues the photo, not noise (mean error in 0..255)


def test_the_digit_generator_draws_the_digits_asked_for() -> None:
    """Nearest class mean of scikit-learn's digits (8x8) says which digit a sample shows: measured
    79 % over 80 samples (chance: 10 %); here 20 samples must reach 60 %."""
    sklearn = pytest.importorskip("sklearn.datasets")
    from diffedit.plugins import PluginHost
    from diffedit.settings import Settings
    from diffedit.tasks.base import TaskRequest
    from diffedit.tasks.params import make_params
    from diffedit.tasks.runner import run_task

    data = sklearn.load_digits()
    means = np.stack([data.images[data.target == k].mean(0) for k in range(10)]) / 16
    registry = PluginHost(settings=Settings(), autoload=False).discover()
    spec = registry.tasks["generate"]
    hits = 0
    for digit in range(10):
        for seed in range(2):
            params = make_params(spec.params, {"class_name": str(digit), "seed": seed})
            result = run_task(TaskRequest(task="generate", params=params, model=str(SHIPPED_MODELS / "digits"),
                                          device="cpu"), registry)
            grey = Image.fromarray(result.image[..., :3]).convert("L").resize((8, 8), Image.Resampling.BOX)
            ink = 1 - np.asarray(grey, np.float64) / 255  # the training images are dark digits on white
            hits += int(np.argmin(((means - ink) ** 2).sum(axis=(1, 2))) == digit)
    assert hits >= 12
