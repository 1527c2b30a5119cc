"""`--loss log-mse`: the mean of each example's log squared error (the mean PSNR), so that a multi-task
model's low-error cases weigh as much as its heavy ones; refused by name where it does not apply."""

from __future__ import annotations

import math

import pytest
import torch

from diffedit.commands.train import _parser, config_from_args
from diffedit.training.config import TrainingError
from diffedit.training.loop import Trainer
from diffedit.training.objective import LOG_MSE_FLOOR, reduce_errors
from diffedit.training.vae import VAETrainer


def _errors() -> torch.Tensor:
    """Two examples: one with errors of 0.1 everywhere (MSE 1e-2), one with 0.02 (MSE 4e-4)."""
    return torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.02)])


def test_mse_is_the_mean_of_all_squared_errors() -> None:
    assert float(reduce_errors(_errors(), "mse")) == pytest.approx((1e-2 + 4e-4) / 2)


def test_log_mse_is_the_mean_of_each_examples_log_error() -> None:
    expected = (math.log(1e-2 + LOG_MSE_FLOOR) + math.log(4e-4 + LOG_MSE_FLOOR)) / 2
    assert float(reduce_errors(_errors(), "log-mse")) == pytest.approx(expected, rel=1e-6)


def test_log_mse_gives_the_low_error_example_the_same_relative_pull() -> None:
    """Under MSE the heavy example's gradient is 5x the light one's (errors 0.1 vs 0.02); under log-MSE
    each gradient is divided by its own example's error, so the light example pulls harder per pixel."""
    grads = {}
    for loss in ("mse", "log-mse"):
        error = _errors().requires_grad_()
        reduce_errors(error, loss).backward()
        assert error.grad is not None
        grads[loss] = error.grad.abs().flatten(1).mean(1)
    mse_ratio = float(grads["mse"][0] / grads["mse"][1])
    log_ratio = float(grads["log-mse"][0] / grads["log-mse"][1])
    assert mse_ratio == pytest.approx(5.0)
    # d log(m + f)/d e = 2e / (n (m + f)): 0.1/(1.01e-2) against 0.02/(5e-4)
    assert log_ratio == pytest.approx((0.1 / (1e-2 + LOG_MSE_FLOOR)) / (0.02 / (4e-4 + LOG_MSE_FLOOR)), rel=1e-5)
    assert log_ratio < 0.5


def test_an_unknown_loss_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'l1'; choose one of mse, log-mse"):
        reduce_errors(_errors(), "l1")


def test_the_cli_passes_the_loss_and_defaults_to_mse(tmp_path) -> None:
    args = ["--data", str(tmp_path), "--out", str(tmp_path / "run")]
    assert config_from_args(_parser().parse_args(args)).loss == "mse"
    assert config_from_args(_parser().parse_args([*args, "--loss", "log-mse"])).loss == "log-mse"


def test_a_log_mse_run_trains_and_validates_with_its_loss(image_folder, tiny, tmp_path) -> None:
    root = image_folder(n=10)
    runs = {}
    for loss in ("mse", "log-mse"):
        out = tmp_path / loss
        runs[loss] = list(Trainer(tiny(root, out, steps=3, batch=2, checkpoint_every=3, val_fraction=0.2,
                                       loss=loss)).run())
        assert sorted({p.step for p in runs[loss]}) == [1, 2, 3]
        assert all(math.isfinite(p.loss) for p in runs[loss])
    # the same first batch and noise: by Jensen, the mean of the logs is at most the log of the mean
    mse, log_mse = runs["mse"][0].loss, runs["log-mse"][0].loss
    assert log_mse < math.log(mse + LOG_MSE_FLOOR)
    val = [p.val_loss for p in runs["log-mse"] if p.val_loss is not None]
    assert val and math.isfinite(val[0])


def test_an_unknown_loss_stops_the_run_before_it_starts(image_folder, tiny, tmp_path) -> None:
    with pytest.raises(TrainingError, match="unknown loss 'huber'; choose one of mse, log-mse"):
        Trainer(tiny(image_folder(), tmp_path / "run", loss="huber"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_vae_refuses_log_mse(image_folder, tiny, tmp_path) -> None:
    with pytest.raises(TrainingError, match="--loss log-mse is for diffusion models"):
        VAETrainer(tiny(image_folder(), tmp_path / "vae", task="vae", loss="log-mse"))
