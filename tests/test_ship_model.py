"""scripts/ship_model.py: a run's checkpoint copied as a shipped model, optionally stored as float16
(with the manifest's hashes updated) and with the hardware a training machine recorded. Everything
is written under a temporary SHIPPED folder, never into resources/models."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffedit.diffusion.checkpoints import load_checkpoint, save_checkpoint
from diffedit.diffusion.models import CheckpointError, build
from diffedit.downloads import file_sha256

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def ship_model(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ship_model", ROOT / "scripts" / "ship_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "SHIPPED", tmp_path / "shipped")
    (tmp_path / "shipped").mkdir()
    return module


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished run folder as `diffedit train` leaves it: best/ (with a training state) and metrics."""
    folder = tmp_path / "run"
    save_checkpoint(folder / "best", build("generate", preset="tiny", image_size=16, seed=4))
    (folder / "best" / "step.state.pt").write_bytes(b"optimizer state, never shipped")
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"step": 1, "loss": 0.9, "lr": 1e-3}, {"step": 2, "val_loss": 0.5}, {"step": 4, "val_loss": 0.25},
        {"step": 6, "val_loss": 0.375})) + "\n")
    return folder


def _args(run: Path, tmp_path: Path, **changes) -> argparse.Namespace:
    log = tmp_path / "train.log"
    log.write_text("train: 50%|#####| 2/4 [00:30<00:30]\rtrain: 100%|#####| 4/4 [01:02<00:00, 1.5step/s]\n")
    values = {"run": run, "name": "demo", "checkpoint": "best", "log": log, "command": "diffedit train --data d",
              "data": tmp_path / "no-data", "data_name": "blobs", "license": "CC0-1.0", "default_steps": 0,
              "description": "", "hardware": None, "half": False, "not_default": False}
    values.update(changes)
    return argparse.Namespace(**values)


def test_halve_weights_stores_float16_and_returns_the_new_hashes(ship_model, run, tmp_path) -> None:
    original = load_checkpoint(run / "best").unet.state_dict()
    folder = tmp_path / "copy"
    shutil.copytree(run / "best", folder)
    before = (folder / WEIGHTS).stat().st_size
    digests = ship_model.halve_weights(folder)
    assert set(digests) == {WEIGHTS} and not list(folder.rglob("*.tmp"))
    stored = load_file(folder / WEIGHTS)
    assert {t.dtype for t in stored.values()} == {torch.float16}
    assert (folder / WEIGHTS).stat().st_size < 0.55 * before
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):  # the manifest still lists the old file
        load_checkpoint(folder)
    manifest = json.loads((folder / "diffedit.json").read_text())
    manifest["made"]["weights_sha256"].update(digests)
    (folder / "diffedit.json").write_text(json.dumps(manifest))
    loaded = load_checkpoint(folder).unet.state_dict()
    for name, tensor in original.items():
        assert loaded[name].dtype == torch.float32 and torch.equal(loaded[name], tensor.half().float()), name


def test_ship_half_with_recorded_hardware(ship_model, run, tmp_path) -> None:
    hardware = {"machine": "x86_64", "cpus": 16, "gpu": "NVIDIA H200", "precision": "bf16 autocast"}
    (tmp_path / "gpu.json").write_text(json.dumps(hardware))
    target = ship_model.ship(_args(run, tmp_path, half=True, hardware=tmp_path / "gpu.json", default_steps=3))
    assert target == tmp_path / "shipped" / "demo"
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == ["demo"]  # no partial folder left
    assert not list(target.rglob("*.state.pt"))
    provenance = json.loads((target / "provenance.json").read_text())
    assert provenance["hardware"] == hardware
    assert provenance["training_seconds"] == 62.0
    assert (provenance["best_val_loss"], provenance["best_val_step"]) == (0.25, 4)
    assert provenance["command"] == "diffedit train --data d"
    manifest = json.loads((target / "diffedit.json").read_text())
    assert manifest["default"] is True and manifest["license"] == "CC0-1.0" and manifest["default_steps"] == 3
    assert {t.dtype for t in load_file(target / WEIGHTS).values()} == {torch.float16}
    source = json.loads((run / "best" / "diffedit.json").read_text())["made"]["weights_sha256"]
    assert manifest["made"]["weights_sha256"][WEIGHTS] == file_sha256(target / WEIGHTS) != source[WEIGHTS]
    loaded = load_checkpoint(target)  # verifies every listed hash
    assert all(t.dtype == torch.float32 for t in loaded.unet.state_dict().values())


def test_ship_without_half_keeps_the_files_and_records_this_machine(ship_model, run, tmp_path) -> None:
    target = ship_model.ship(_args(run, tmp_path, not_default=True))
    assert (target / WEIGHTS).read_bytes() == (run / "best" / WEIGHTS).read_bytes()
    assert json.loads((target / "diffedit.json").read_text())["made"] == \
        json.loads((run / "best" / "diffedit.json").read_text())["made"]
    provenance = json.loads((target / "provenance.json").read_text())
    assert provenance["hardware"]["machine"] and provenance["hardware"]["gpu"] is None
    assert json.loads((target / "diffedit.json").read_text())["default"] is False
    load_checkpoint(target)


def test_the_command_line_takes_half_and_hardware(ship_model, run, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "gpu.json").write_text(json.dumps({"gpu": "NVIDIA H100"}))
    argv = ["ship_model.py", "--run", str(run), "--name", "cli", "--license", "MIT", "--command", "diffedit train",
            "--half", "--hardware", str(tmp_path / "gpu.json")]
    monkeypatch.setattr(sys, "argv", argv)
    ship_model.main()
    target = tmp_path / "shipped" / "cli"
    assert f"shipped {target}" in capsys.readouterr().out
    assert json.loads((target / "provenance.json").read_text())["hardware"] == {"gpu": "NVIDIA H100"}
    assert {t.dtype for t in load_file(target / WEIGHTS).values()} == {torch.float16}
    load_checkpoint(target)
