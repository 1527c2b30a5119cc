"""`--init`: a new run starts from another checkpoint's UNet weights (fine-tuning), float16-stored
ones included; a checkpoint whose UNet does not fit the run is refused before anything trains."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

from diffedit.diffusion.checkpoints import load_checkpoint
from diffedit.training.config import TrainingError
from diffedit.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[2]


def _ship_model():
    spec = importlib.util.spec_from_file_location("ship_model", ROOT / "scripts" / "ship_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def source(image_folder, tiny, tmp_path) -> tuple[Path, Path]:
    """(data folder, best/ of a finished 2-step run)."""
    root = image_folder(n=10)
    out = tmp_path / "source"
    list(Trainer(tiny(root, out, steps=2, batch=2, checkpoint_every=2, val_fraction=0.2, seed=1)).run())
    assert (out / "best" / "diffedit.json").is_file()
    return root, out / "best"


def _assert_weights(module: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = module.state_dict()
    assert got.keys() == expected.keys()
    for name, tensor in got.items():
        assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, expected[name].float()), name


def test_a_run_starts_from_the_init_checkpoints_weights(source, tiny, tmp_path) -> None:
    root, best = source
    expected = load_checkpoint(best).unet.state_dict()
    fresh = Trainer(tiny(root, tmp_path / "fresh", seed=7))
    assert any(not torch.equal(t, expected[k]) for k, t in fresh.unet.state_dict().items())  # seeds differ
    tuned = Trainer(tiny(root, tmp_path / "tuned", seed=7, init=str(best)))
    _assert_weights(tuned.unet, expected)
    _assert_weights(tuned.ema.model, expected)  # the EMA starts there too
    # only the weights: the schedule, optimizer and step start fresh, and it trains on
    assert tuned.step == 0 and not tuned.optimizer.state
    progress = list(tuned.run())
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "tuned" / "checkpoints" / "step-000004" / "diffedit.json").read_text())[
        "made"]["steps"] == 4


@pytest.mark.parametrize("changes,message", [
    ({"preset": "conv", "size": 16}, r"--init .*: its UNet differs from the one this run builds"),
    ({"task": "repair"}, r"--init .*: its task is 'generate', this run's is 'restore'"),
    ({"prediction_type": "v_prediction"}, r"--init .*: its prediction type is 'epsilon', this run's is 'v_prediction'"),
    ({"init": "missing"}, r"--init .*missing: not a readable checkpoint"),
], ids=["another preset", "another task", "another prediction type", "no checkpoint"])
def test_an_init_checkpoint_that_does_not_fit_is_refused(source, tiny, tmp_path, changes, message) -> None:
    root, best = source
    values = {"init": str(best), **changes}
    if values["init"] == "missing":
        values["init"] = str(tmp_path / "missing")
    with pytest.raises(TrainingError, match=message):
        Trainer(tiny(root, tmp_path / "out", **values))
    assert not (tmp_path / "out").exists()


def test_float16_weights_start_a_float32_run(source, tiny, tmp_path) -> None:
    root, best = source
    expected = load_checkpoint(best).unet.state_dict()
    half = tmp_path / "half"
    shutil.copytree(best, half)
    digests = _ship_model().halve_weights(half)
    assert set(digests) == {"unet/diffusion_pytorch_model.safetensors"}
    # the changed file no longer matches the manifest's hash: refused, naming --init
    with pytest.raises(TrainingError, match=r"--init .*SHA-256 does not match"):
        Trainer(tiny(root, tmp_path / "refused", init=str(half)))
    manifest = json.loads((half / "diffedit.json").read_text())
    manifest["made"]["weights_sha256"].update(digests)
    (half / "diffedit.json").write_text(json.dumps(manifest))
    tuned = Trainer(tiny(root, tmp_path / "tuned", init=str(half)))
    _assert_weights(tuned.unet, {k: v.half() for k, v in expected.items()})
    assert any(not torch.equal(v.half().float(), v) for v in expected.values())  # float16 rounded them
