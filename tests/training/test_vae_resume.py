"""VAE training (`--task vae`): exact resume from checkpoints/step-N and the EMA VAE is what is saved."""

from __future__ import annotations

import json

import pytest
import torch

from diffedit.training import state
from diffedit.training.config import TrainingError
from diffedit.training.vae import MARKER, VAETrainer


def _vae(tiny, root, out, **extra):
    values = {"task": "vae", "steps": 6, "batch": 2, "checkpoint_every": 3, "lr": 2e-3, "ema_decay": 0.9, **extra}
    return VAETrainer(tiny(root, out, **values))


def test_vae_resume_repeats_the_uninterrupted_run(image_folder, tiny, tmp_path) -> None:
    root = image_folder(n=4)
    full_trainer = _vae(tiny, root, tmp_path / "full")
    full = [p.loss for p in full_trainer.run()]
    interrupted = []
    for p in _vae(tiny, root, tmp_path / "cut").run():
        interrupted.append(p.loss)
        if p.step == 4:  # stopped after step 4: the checkpoint of step 3 is the last one
            break
    assert [s for s, _ in state.completed(tmp_path / "cut", MARKER)] == [3]
    resumed = _vae(tiny, root, tmp_path / "cut", resume=True)
    assert resumed.step == 3 and resumed.ema.updates == 3
    rest = list(resumed.run())
    assert [p.step for p in rest] == [4, 5, 6]
    assert interrupted[:3] == full[:3] and [p.loss for p in rest] == full[3:]
    for key in ("vae", "ema"):
        a = getattr(full_trainer, key) if key == "vae" else full_trainer.ema.model
        b = getattr(resumed, key) if key == "vae" else resumed.ema.model
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), (key, name)
    logged = [json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 3, 4, 5, 6, 6]  # step 4 of the cut run was dropped, not doubled
    saved = torch.load(state.state_path(state.step_folder(tmp_path / "cut", 6)), weights_only=True)
    assert saved["step"] == 6 and {"vae", "ema", "optimizer", "lr_schedule", "rng"} <= set(saved)


def test_the_saved_vae_is_the_ema(image_folder, tiny, tmp_path) -> None:
    import diffusers

    root = image_folder(n=4)
    trainer = _vae(tiny, root, tmp_path / "out", steps=4, checkpoint_every=2, keep=1)
    progress = list(trainer.run())
    assert [p.checkpoint for p in progress if p.checkpoint] == [str(tmp_path / "out" / "vae")] * 2
    assert trainer.last_checkpoint == tmp_path / "out" / "vae" and trainer.saved_step == 4
    assert [s for s, _ in state.completed(tmp_path / "out", MARKER)] == [4]  # keep 1
    ema, raw = trainer.ema.model.state_dict(), trainer.vae.state_dict()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)
    for folder in (tmp_path / "out" / "vae", state.step_folder(tmp_path / "out", 4)):
        loaded = diffusers.AutoencoderKL.from_pretrained(str(folder))
        assert loaded.config.scaling_factor != 1.0
        for name, tensor in loaded.state_dict().items():
            assert torch.equal(tensor, ema[name]), (folder, name)


def test_vae_resume_errors(image_folder, tiny, tmp_path) -> None:
    root = image_folder(n=4)
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        _vae(tiny, root, tmp_path / "out", resume=True)
    list(_vae(tiny, root, tmp_path / "out", steps=1).run())
    with pytest.raises(TrainingError, match="already holds a VAE run"):
        _vae(tiny, root, tmp_path / "out", steps=1)
    with pytest.raises(TrainingError, match="batch differ"):
        _vae(tiny, root, tmp_path / "out", steps=2, batch=4, resume=True)
    more = _vae(tiny, root, tmp_path / "out", steps=2, resume=True)  # more steps than before
    assert more.step == 1 and [p.step for p in more.run()] == [2]


def test_cli_resumes_a_vae_run(image_folder, tmp_path, capsys) -> None:
    from diffedit.commands.train import main

    root = image_folder(n=4)
    base = ["--data", str(root), "--size", "16", "--batch", "2", "--device", "cpu", "--preset", "tiny",
            "--task", "vae", "--checkpoint-every", "1", "--out", str(tmp_path / "v")]
    assert main([*base, "--steps", "1"]) == 0
    assert main([*base, "--steps", "2", "--resume"]) == 0
    assert f"done: {tmp_path / 'v' / 'vae'}" in capsys.readouterr().out
    assert [s for s, _ in state.completed(tmp_path / "v", MARKER)] == [1, 2]
