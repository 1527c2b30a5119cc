"""The run folder: checkpoint folders, the training state beside each, best model, metrics log.

    OUT/checkpoints/step-000500/        a checkpoint folder (EMA weights), written by save_checkpoint
    OUT/checkpoints/step-000500.state.pt  optimizer, raw weights, EMA, lr schedule, RNG, step
    OUT/best/                           the checkpoint with the lowest validation loss so far
    OUT/samples/step-000500.png         a sample grid from the EMA model
    OUT/metrics.jsonl                   one JSON object per step (loss, lr, images/s) or checkpoint

The state file is written (atomically) before its checkpoint folder, and a checkpoint counts only
when both exist, so an interrupted save never leaves a checkpoint that cannot resume. The state holds
only tensors and plain containers: `torch.load(weights_only=True)` reads it without running code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from diffedit.diffusion.checkpoints import save_checkpoint
from diffedit.diffusion.models import ModelBundle

_STEP = re.compile(r"step-(\d+)$")


def checkpoints_dir(out: Path) -> Path:
    return out / "checkpoints"


def step_folder(out: Path, step: int) -> Path:
    return checkpoints_dir(out) / f"step-{step:06d}"


def state_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".state.pt")


def completed(out: Path, marker: str = "diffedit.json") -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint (folder with `marker` + state file), oldest first.
    A VAE run's checkpoint folders are AutoencoderKL folders: their marker is config.json."""
    root = checkpoints_dir(out)
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        match = _STEP.match(folder.name)
        if match and folder.is_dir() and (folder / marker).is_file() and state_path(folder).is_file():
            found.append((int(match.group(1)), folder))
    return sorted(found)


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(out: Path, step: int, bundle: ModelBundle, state: dict[str, Any]) -> Path:
    """Write the state file, then the checkpoint folder (atomic, replacing a stale one of that step)."""
    return save_with(out, step, state, lambda folder: save_checkpoint(folder, bundle, overwrite=True))


def save_with(out: Path, step: int, state: dict[str, Any], write: Callable[[Path], Any]) -> Path:
    """`save` for any folder writer: the state file first, then `write(step folder)` (which must replace
    the folder atomically)."""
    folder = step_folder(out, step)
    folder.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(state_path(folder), lambda p: torch.save(state, p))
    write(folder)
    return folder


def save_best(out: Path, bundle: ModelBundle) -> Path:
    folder = out / "best"
    save_checkpoint(folder, bundle, overwrite=True)
    return folder


def load_state(folder: Path) -> dict[str, Any]:
    return torch.load(state_path(folder), map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


def prune(out: Path, keep: int, marker: str = "diffedit.json") -> None:
    """Keep the last `keep` checkpoints (and their state files)."""
    done = completed(out, marker)
    for _, folder in done[: max(0, len(done) - max(1, keep))]:
        state_path(folder).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def remove_after(out: Path, step: int) -> None:
    """Forget checkpoints and metrics from beyond `step` (a crashed run's tail, when resuming)."""
    root = checkpoints_dir(out)
    if root.is_dir():
        for path in root.iterdir():
            match = _STEP.match(path.name.removesuffix(".state.pt"))
            if match and int(match.group(1)) > step:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    log = out / "metrics.jsonl"
    if log.is_file():
        kept = [line for line in log.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        _atomic_write(log, lambda p: p.write_text("".join(line + "\n" for line in kept), encoding="utf-8"))


class MetricsLog:
    """JSON lines, appended and flushed per record so a crash loses at most the current step."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
