"""`diffedit fid` end to end on tiny sets: --save-stats, --images --json, --checkpoints --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.metrics.conftest import write_images


@pytest.fixture(autouse=True)
def _fast_distance(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the plumbing; scipy's sqrtm at 2048-d costs ~30 s a call on one thread here."""
    from diffedit.metrics import evaluate, fid

    monkeypatch.setattr(evaluate, "frechet_distance", fid.frechet_distance_eig)


@pytest.fixture
def sets(tmp_path: Path, photos: list[np.ndarray], extractor: Any) -> tuple[Path, Path]:
    return write_images(tmp_path / "ref", photos), write_images(tmp_path / "gen", photos[::-1][:2])


def test_images_json_and_save_stats(sets: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    from diffedit.commands.fid import main

    ref, gen = sets
    out = tmp_path / "ref.npz"
    assert main(["--save-stats", str(ref), str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["--ref", str(out), "--images", str(gen), "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert set(result) == {"fid", "kid", "kid_std", "n_ref", "n_images"}
    assert result["n_ref"] == 3 and result["n_images"] == 2 and result["fid"] > 0
    assert "fewer" in captured.err or "< 2048" in captured.err


def test_checkpoints_json(tmp_path: Path, extractor: Any, capsys: Any) -> None:
    from diffedit.commands.fid import main
    from diffedit.diffusion.checkpoints import save_checkpoint
    from diffedit.diffusion.models import build

    ckpt = tmp_path / "gen-ckpt"
    save_checkpoint(ckpt, build(preset="tiny", seed=1, task="generate"))
    ref = write_images(tmp_path / "ref", [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
                                          for i in range(2)])
    code = main(["--ref", str(ref), "--checkpoints", str(ckpt), "--samples", "2", "--steps", "2", "--seed", "3",
                 "--json", "--quiet"])
    assert code == 0, capsys.readouterr().err
    payload = json.loads(capsys.readouterr().out)
    (row,) = payload["results"]
    assert row["checkpoint"] == str(ckpt) and "step" in row and row["n_images"] == 2 and np.isfinite(row["fid"])


def test_usage_errors(capsys: Any) -> None:
    from diffedit.commands.fid import main

    with pytest.raises(SystemExit):
        main(["--images", "x"])
    assert main(["--ref", "/nonexistent", "--images", "/nonexistent2", "--quiet"]) == 1
    assert "error" in capsys.readouterr().err
