"""The training loop: learning, exact resume, NaN stop, and what a run folder holds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffedit.training import state
from diffedit.training.config import TrainingError
from diffedit.training.loop import Trainer, lr_factor


def test_loss_falls_and_the_run_folder_is_complete(image_folder, tiny, tmp_path) -> None:
    from diffedit.diffusion.checkpoints import load_checkpoint

    root = image_folder(n=10)
    out = tmp_path / "out"
    progress = list(Trainer(tiny(root, out, steps=30, batch=8, checkpoint_every=10, keep=2, val_fraction=0.2,
                                 seed=5)).run())
    losses = [p.loss for p in progress]
    assert [p.step for p in progress] == list(range(1, 31))
    assert np.mean(losses[-6:]) < 0.5 * np.mean(losses[:3]), losses
    saved = [p for p in progress if p.checkpoint]
    assert [p.step for p in saved] == [10, 20, 30] and all(p.val_loss is not None for p in saved)
    assert [s for s, _ in state.completed(out)] == [20, 30]  # keep 2
    assert progress[-1].eta_s == 0 and progress[0].images_per_s > 0
    model = load_checkpoint(out / "checkpoints" / "step-000030")
    assert model.manifest.made.steps == 30 and model.manifest.made.seed == 5
    assert model.manifest.made.data == str(root.resolve()) and model.manifest.image_size == 16
    best = load_checkpoint(out / "best")
    assert best.manifest.made.steps in (10, 20, 30)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, 31))
    assert all({"loss", "lr", "images_per_s"} <= set(r) for r in lines if "loss" in r)
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"step-0000{s}.png" for s in (10, 20, 30)]
    assert progress[-1].sample_grid and progress[-1].sample_grid.endswith("step-000030.png")
    state_file = torch.load(state.state_path(out / "checkpoints" / "step-000030"), weights_only=True)
    assert state_file["step"] == 30 and "optimizer" in state_file and "ema" in state_file


@pytest.mark.parametrize("task,extra", [("generate", {"prediction_type": "v_prediction", "accumulate": 2}),
                                        ("inpaint", {"prediction_type": "sample"})])
def test_resume_repeats_the_uninterrupted_losses(image_folder, tiny, tmp_path, task, extra) -> None:
    root = image_folder(n=8, classes=("a", "b") if task == "generate" else ())
    if task == "generate":
        extra = {**extra, "conditioning": "class"}
    full = [p.loss for p in Trainer(tiny(root, tmp_path / "full", task=task, steps=6, checkpoint_every=3,
                                         **extra)).run()]
    interrupted = []
    for p in Trainer(tiny(root, tmp_path / "cut", task=task, steps=6, checkpoint_every=3, **extra)).run():
        interrupted.append(p.loss)
        if p.step == 4:  # stopped after step 4: the checkpoint of step 3 is the last one
            break
    resumed = Trainer(tiny(root, tmp_path / "cut", task=task, steps=6, checkpoint_every=3, resume=True, **extra))
    assert resumed.step == 3
    rest = list(resumed.run())
    assert [p.step for p in rest] == [4, 5, 6]
    assert interrupted[:3] == full[:3] and [p.loss for p in rest] == full[3:]
    logged = [json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in logged] == [1, 2, 3, 3, 4, 5, 6, 6]  # step 4 of the cut run was dropped, not doubled


def test_resume_and_output_folder_errors(image_folder, tiny, tmp_path) -> None:
    root = image_folder(n=4)
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        Trainer(tiny(root, tmp_path / "out", resume=True))
    list(Trainer(tiny(root, tmp_path / "out", steps=1)).run())
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        Trainer(tiny(root, tmp_path / "out", steps=1))
    with pytest.raises(TrainingError, match="batch differ"):
        Trainer(tiny(root, tmp_path / "out", steps=2, batch=2, resume=True))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(image_folder, tiny, tmp_path, monkeypatch) -> None:
    root = image_folder(n=4)
    trainer = Trainer(tiny(root, tmp_path / "out", steps=8, checkpoint_every=2))
    real = Trainer.compute_loss

    def broken(self, batch, gen):
        loss = real(self, batch, gen)
        return loss * float("nan") if self.step >= 3 else loss

    monkeypatch.setattr(Trainer, "compute_loss", broken)
    steps = []
    with pytest.raises(TrainingError, match=r"loss became nan at step 4.*last good checkpoint is .*step-000002"):
        for p in trainer.run():
            steps.append(p.step)
    assert steps == [1, 2, 3]
    assert [s for s, _ in state.completed(tmp_path / "out")] == [2]


def test_lr_schedule() -> None:
    assert lr_factor(0, 100, 10) == pytest.approx(0.1) and lr_factor(9, 100, 10) == 1.0
    assert lr_factor(55, 100, 10) == pytest.approx(0.5) and lr_factor(100, 100, 10) == pytest.approx(0.0)
