"""Trained checkpoints run through the tasks exactly like any other model (the conditioning the
trainer fed must be what the task runners feed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffedit.plugins import PluginHost
from diffedit.settings import Settings
from diffedit.tasks.base import TaskRequest
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task
from diffedit.training.loop import Trainer


@pytest.fixture(scope="module")
def registry():
    return PluginHost(settings=Settings(), autoload=False).discover()


def _photo() -> np.ndarray:
    px = np.zeros((24, 32, 4), np.uint8)
    px[..., 0] = np.arange(32)[None, :] * 8
    px[8:18, 10:22, 1] = 200
    px[..., 3] = 255
    return px


def _run(registry, task: str, model: Path, **values):
    image = mask = None
    if task != "generate":
        image = _photo()
    if task == "inpaint":
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[6:16, 8:20] = 255
    params = make_params(registry.tasks[task].params, {"steps": 2, "seed": 3, **values})
    return run_task(TaskRequest(task=task, params=params, model=str(model), image=image, mask=mask, device="cpu"),
                    registry)


@pytest.mark.parametrize("kind", ["generate", "class", "text", "inpaint", "restore", "restore-class", "super-resolve",
                                  "segment"])
def test_trained_checkpoint_runs_its_task(image_folder, tiny, tmp_path, registry, kind) -> None:
    overrides: dict = {"task": kind.split("-")[0] if kind != "super-resolve" else kind, "steps": 2}
    if kind in ("class", "restore-class"):
        overrides["conditioning"] = "class"
    if kind in ("class", "text"):
        overrides["task"] = "generate"
    if kind == "text":
        overrides["conditioning"] = "text"
    if kind == "super-resolve":
        overrides["scale_factor"] = 2
    root = image_folder(n=4, classes=("red", "green") if kind == "class" else (), captions=kind == "text",
                        masks=kind == "segment")
    trainer = Trainer(tiny(root, tmp_path / "out", **overrides))
    list(trainer.run())
    model = trainer.last_checkpoint
    assert model is not None
    task = overrides["task"]
    values = {"class_name": "green", "guidance_scale": 2.0} if kind == "class" else {}
    if kind == "text":
        values = {"prompt": "a red disc", "guidance_scale": 2.0}
    if kind == "restore-class":
        values = {"degradation": "jpeg"}
    result = _run(registry, task, model, **values)
    if task == "segment":
        assert result.mask is not None and result.mask.shape == (24, 32)
        return
    image = result.image
    expected = {"generate": (16, 16, 4), "inpaint": None, "restore": (24, 32, 4), "super-resolve": (48, 64, 4)}
    if expected.get(task):
        assert image.shape == expected[task]
    assert image.dtype == np.uint8 and result.record.model_hash


def test_latent_training_fits_the_vae_scaling_factor(image_folder, tiny, tmp_path, registry) -> None:
    import diffusers

    from diffedit.diffusion.checkpoints import load_checkpoint
    from diffedit.diffusion.models import vae_config

    config = {k: v for k, v in vae_config("tiny", channels=3, image_size=16).items() if k != "_class_name"}
    diffusers.AutoencoderKL.from_config(config).save_pretrained(tmp_path / "vae")
    trainer = Trainer(tiny(image_folder(n=4), tmp_path / "out", latent=True, vae=str(tmp_path / "vae"), steps=2,
                           task="inpaint"))
    list(trainer.run())
    model = load_checkpoint(trainer.last_checkpoint)
    assert model.manifest.latent and model.vae.config.scaling_factor != 1.0
    assert _run(registry, "inpaint", trainer.last_checkpoint).image.dtype == np.uint8
