"""The MiniLM text encoder (default for text training) and VAE training for latent models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffedit.commands.train import main
from diffedit.plugins import PluginHost
from diffedit.settings import Settings
from diffedit.tasks.base import TaskRequest
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task
from diffedit.training.loop import Trainer


@pytest.fixture(scope="module")
def registry():
    return PluginHost(settings=Settings(), autoload=False).discover()


@pytest.fixture(scope="module")
def minilm():
    from diffedit.diffusion.text import load_minilm

    return load_minilm()


def _generate(registry, model: Path, **values):
    params = make_params(registry.tasks["generate"].params, {"steps": 2, "seed": 3, **values})
    return run_task(TaskRequest(task="generate", params=params, model=str(model), device="cpu"), registry)


def test_minilm_encodes_prompts_and_survives_a_checkpoint(minilm, tmp_path) -> None:
    from diffedit.diffusion.checkpoints import load_checkpoint, save_checkpoint
    from diffedit.diffusion.models import build
    from diffedit.diffusion.text import MiniLMTextEncoder

    prompts = ["a red disc", "a green square on grey", ""]
    states = minilm.encode(prompts)
    assert minilm.width == 384 and states.shape == (3, minilm.max_length, 384)
    assert not torch.allclose(states[0], states[1], atol=1e-3)
    assert torch.equal(minilm.encode(prompts[:1])[0], states[0])  # padding never leaks into a prompt's states
    save_checkpoint(tmp_path / "model", build("generate", "text", "tiny", 16, text_encoder=minilm, seed=0))
    loaded = load_checkpoint(tmp_path / "model")
    assert isinstance(loaded.text_encoder, MiniLMTextEncoder)
    assert torch.equal(loaded.text_encoder.encode(prompts), states)


def test_text_training_defaults_to_minilm_and_generates(image_folder, tiny, tmp_path, registry) -> None:
    from diffedit.diffusion.checkpoints import load_checkpoint

    root = image_folder(n=4, captions=True)
    trainer = Trainer(tiny(root, tmp_path / "out", conditioning="text", steps=2))
    list(trainer.run())
    assert trainer.last_checkpoint is not None
    assert load_checkpoint(trainer.last_checkpoint).text_encoder.width == 384
    result = _generate(registry, trainer.last_checkpoint, prompt="a red disc", guidance_scale=2.0)
    assert result.image.shape == (16, 16, 4) and result.image.dtype == np.uint8


def test_vae_training_lowers_the_loss_and_drives_latent_training(image_folder, tiny, tmp_path, registry) -> None:
    from diffedit.diffusion.checkpoints import load_checkpoint
    from diffedit.training.vae import VAETrainer

    root = image_folder(n=4)
    vae_trainer = VAETrainer(tiny(root, tmp_path / "vae-run", task="vae", steps=30, lr=2e-3, checkpoint_every=15))
    before = vae_trainer.reconstruction_error()
    progress = list(vae_trainer.run())
    after = vae_trainer.reconstruction_error()
    assert after < 0.7 * before, (before, after)
    assert [p.step for p in progress if p.checkpoint] == [15, 30]
    assert (tmp_path / "vae-run" / "vae" / "config.json").is_file()

    trainer = Trainer(tiny(root, tmp_path / "latent", latent=True, vae=str(tmp_path / "vae-run"), steps=2))
    list(trainer.run())
    model = load_checkpoint(trainer.last_checkpoint)
    assert model.manifest.latent and model.vae.config.scaling_factor != 1.0
    result = _generate(registry, trainer.last_checkpoint)
    assert result.image.shape == (16, 16, 4) and result.image.dtype == np.uint8


def test_cli_trains_a_vae_and_reports_text_encoder_errors(image_folder, tmp_path, capsys) -> None:
    root = image_folder(n=4, captions=True)
    base = ["--data", str(root), "--size", "16", "--batch", "2", "--device", "cpu", "--preset", "tiny"]
    assert main([*base, "--task", "vae", "--steps", "2", "--out", str(tmp_path / "v")]) == 0
    assert "done:" in capsys.readouterr().out and (tmp_path / "v" / "vae" / "config.json").is_file()
    from diffedit.diffusion.text import build_tiny_clip

    build_tiny_clip(width=32, seed=0).save(tmp_path / "sd")  # a Stable Diffusion folder's text_encoder/ + tokenizer/
    assert main([*base, "--conditioning", "text", "--text-encoder", str(tmp_path / "sd"), "--steps", "1",
                 "--sample-steps", "1", "--out", str(tmp_path / "clip")]) == 0
    capsys.readouterr()
    code = main([*base, "--conditioning", "text", "--text-encoder", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 1 and "no text encoder here" in err and err.count("\n") == 1
