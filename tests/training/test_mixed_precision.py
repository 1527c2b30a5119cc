"""Mixed precision without a GPU: the precision choice with a fake CUDA device, and the autocast +
GradScaler training path run on the CPU (Trainer.amp_device = "cpu"), including its exact resume."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from diffedit.training import loop, state
from diffedit.training.config import TrainingError
from diffedit.training.loop import Trainer


@pytest.mark.parametrize("precision,bf16,expected", [
    ("fp32", True, None), ("fp16", True, torch.float16), ("bf16", True, torch.bfloat16),
    ("auto", True, torch.bfloat16), ("auto", False, torch.float16), ("bf16", False, torch.float16)])
def test_precision_choice_on_cuda(monkeypatch, precision, bf16, expected) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    fake = SimpleNamespace(config=SimpleNamespace(precision=precision), device=torch.device("cuda"))
    assert Trainer._mixed_precision(fake) == expected  # type: ignore[arg-type]


def test_precision_choice_elsewhere() -> None:
    cpu = SimpleNamespace(config=SimpleNamespace(precision="fp16"), device=torch.device("cpu"))
    assert Trainer._mixed_precision(cpu) is None  # type: ignore[arg-type]
    bad = SimpleNamespace(config=SimpleNamespace(precision="fp8"), device=torch.device("cuda"))
    with pytest.raises(TrainingError, match="unknown precision 'fp8'"):
        Trainer._mixed_precision(bad)  # type: ignore[arg-type]


@pytest.fixture
def cpu_fp16(monkeypatch):
    """Trainers built now train under CPU fp16 autocast with an enabled GradScaler; records the autocast
    state inside the loss."""
    monkeypatch.setattr(Trainer, "amp_device", "cpu")
    monkeypatch.setattr(Trainer, "_mixed_precision", lambda self: torch.float16)
    seen: list[tuple[bool, torch.dtype]] = []
    real = loop.diffusion_loss

    def recording(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "diffusion_loss", recording)
    return seen


def test_fp16_autocast_and_grad_scaler_path_resumes_exactly(image_folder, tiny, tmp_path, cpu_fp16) -> None:
    root = image_folder(n=4)
    full_trainer = Trainer(tiny(root, tmp_path / "full", steps=4, checkpoint_every=2))
    assert full_trainer.scaler.is_enabled() and full_trainer.autocast_dtype == torch.float16
    full = [p.loss for p in full_trainer.run()]
    assert cpu_fp16 and all(on and dtype == torch.float16 for on, dtype in cpu_fp16[:4])  # training steps
    assert all(p.dtype == torch.float32 for p in full_trainer.unet.parameters())  # fp32 master weights
    assert all(torch.isfinite(torch.tensor(full)))
    saved = torch.load(state.state_path(state.step_folder(tmp_path / "full", 2)), weights_only=True)
    assert saved["scaler"]["scale"] > 0  # the scaler's state is part of the training state

    cut = []
    for p in Trainer(tiny(root, tmp_path / "cut", steps=4, checkpoint_every=2)).run():
        cut.append(p.loss)
        if p.step == 3:
            break
    resumed = Trainer(tiny(root, tmp_path / "cut", steps=4, checkpoint_every=2, resume=True))
    assert resumed.step == 2 and resumed.scaler.get_scale() == saved["scaler"]["scale"]
    assert cut[:2] == full[:2] and [p.loss for p in resumed.run()] == full[2:]
    for name, tensor in full_trainer.unet.state_dict().items():
        assert torch.equal(tensor, resumed.unet.state_dict()[name]), name
