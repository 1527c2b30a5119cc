"""The FID panel on tiny checkpoints with few samples: the numbers `compare_checkpoints` gives, table,
chart, sample grid, CSV, the sample cache, cancel midway, training runs by step, no thread left behind.

A stand-in extractor (mean colour, pytorch-fid's own test idea) replaces Inception: on 2 CPU cores
Inception at 299 px and a 2048-d matrix square root would cost minutes; the plumbing is the same.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QWidget

from diffedit.plugins import PluginHost
from diffedit.qt.fid_panel import FidDialog, FidPanel, open_fid_panel, run_checkpoints

LONG = 60_000  # ms


class MeanColour:
    """Stand-in feature extractor: the mean colour in [0, 1] of each image."""

    has_logits = False

    def __init__(self) -> None:
        self.calls = 0

    def cache_settings(self) -> dict[str, object]:
        return {"extractor": "mean-colour-test"}

    def extract(self, images: Any, total: int, progress: Any = None) -> Any:
        from diffedit.metrics.features import Features

        self.calls += 1
        feats = np.stack([np.asarray(im, np.float64)[..., :3].reshape(-1, 3).mean(0) / 255 for im in images])
        if progress:
            progress(len(feats), total)
        return Features(feats, None)

    def extract_files(self, files: list[Path], progress: Any = None) -> Any:
        from diffedit.metrics.features import load_rgb

        return self.extract([load_rgb(f) for f in files], len(files), progress)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def host() -> PluginHost:
    h = PluginHost()
    h.discover()
    return h


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two tiny generate checkpoints, a training run (step-2, step-4), a reference folder of 5 PNGs."""
    from PIL import Image

    from diffedit.diffusion.checkpoints import save_checkpoint
    from diffedit.diffusion.models import build

    root = tmp_path_factory.mktemp("fid")
    a, b = root / "ckpt-a", root / "ckpt-b"
    save_checkpoint(a, build(task="generate", preset="tiny", seed=1))
    save_checkpoint(b, build(task="generate", preset="tiny", seed=2))
    run = root / "run"
    save_checkpoint(run / "checkpoints" / "step-000004", build(task="generate", preset="tiny", seed=4))
    save_checkpoint(run / "checkpoints" / "step-2", build(task="generate", preset="tiny", seed=3))
    save_checkpoint(run / "best", build(task="generate", preset="tiny", seed=5))  # not a step: not listed
    (run / "checkpoints" / "step-000006").mkdir()  # no manifest (an interrupted save): not listed
    (run / "checkpoints" / "step-000002.state.pt").write_bytes(b"")
    ref = root / "ref"
    ref.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(ref / f"{i}.png")
    return {"a": a, "b": b, "run": run, "ref": ref}


@pytest.fixture
def panel(qtbot: Any, host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FidPanel]:
    monkeypatch.setenv("DIFFEDIT_CACHE_DIR", str(tmp_path / "cache"))
    p = FidPanel(host, extractor_factory=MeanColour, cache_root=tmp_path / "cache")
    qtbot.addWidget(p)
    p.resize(1100, 700)
    p.show()
    qtbot.waitExposed(p)
    p.samples_spin.setValue(4)
    p.steps_spin.setValue(2)
    p.seed_spin.setValue(3)
    yield p
    assert p.shutdown(10_000)
    assert p.threads_alive() == 0


def run_and_wait(qtbot: Any, panel: FidPanel) -> str:
    with qtbot.waitSignal(panel.run_done, timeout=LONG) as blocker:
        assert panel.start()
    return str(blocker.args[0])


def test_panel_measures_checkpoints_like_compare_checkpoints(qtbot: Any, panel: FidPanel, host: PluginHost,
                                                            data: dict[str, Any], tmp_path: Path) -> None:
    from diffedit.metrics.evaluate import SampleSettings, SmallSetWarning, compare_checkpoints
    from diffedit.metrics.stats import StatsCache

    panel.set_reference(data["ref"])
    assert panel.add_checkpoint(data["a"]) and panel.add_checkpoint(data["b"])
    assert panel.run_button.isEnabled() and not panel.export_button.isEnabled()
    ticks: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.restart()))
    timer.start(20)
    assert run_and_wait(qtbot, panel) == "finished"
    timer.stop()
    assert panel.threads_alive() == 0 and not panel.running
    assert len(ticks) >= 3 and max(ticks) < 2000  # the GUI thread kept turning while sampling ran

    with pytest.warns(SmallSetWarning):
        expected = compare_checkpoints(data["ref"], [str(data["a"]), str(data["b"])], SampleSettings(4, "", 2, 3),
                                       MeanColour(), host.registry, StatsCache(tmp_path / "other-cache"))
    assert panel.table.rowCount() == 2
    for got, want in zip(panel.results, expected, strict=True):
        assert got["checkpoint"] == want["checkpoint"] and got["n_images"] == 4 and got["n_ref"] == 5
        assert got["fid"] == pytest.approx(want["fid"], rel=1e-9, abs=1e-12)
        assert got["kid"] == pytest.approx(want["kid"], rel=1e-9, abs=1e-12)
        assert got["kid_std"] == pytest.approx(want["kid_std"], rel=1e-9, abs=1e-12)
    texts = [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())] for r in range(2)]
    assert texts[0][0] == "ckpt-a" and texts[0][5] == "4" and "±" not in texts[0][3]
    assert f"{expected[0]['fid']:.4g}" == texts[0][2]

    assert len(panel.chart.points) == 2 and all(fp is not None and kp is not None
                                                for fp, kp in panel.chart.positions())
    panel.select_result(1)
    assert panel.selected_index() == 1 and panel.chart.selected == 1
    pm = panel.grid_pixmap()
    assert pm is not None and pm.width() >= 64 and "ckpt-b" in panel.grid_caption.text()
    shot = panel.chart.grab().toImage()
    assert shot.width() > 100  # painted without error

    out = panel.export_csv(tmp_path / "out" / "fid.csv")
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["checkpoint"] for r in rows] == [str(data["a"]), str(data["b"])]
    assert float(rows[1]["fid"]) == pytest.approx(expected[1]["fid"]) and rows[0]["n_images"] == "4"
    assert [p.name for p in out.parent.iterdir()] == ["fid.csv"]  # no temp file left

    # a second run samples nothing: features and grid images come from the cache, numbers unchanged
    before = [r["fid"] for r in panel.results]
    assert run_and_wait(qtbot, panel) == "finished"
    assert panel.sample_cache_hits == 2 and [r["fid"] for r in panel.results] == before
    assert all(r["cached"] for r in panel.results) and panel.grid_pixmap() is not None


def test_cancel_midway_keeps_partial_table_and_no_thread(qtbot: Any, panel: FidPanel, data: dict[str, Any]) -> None:
    panel.set_reference(data["ref"])
    panel.add_checkpoint(data["a"])
    panel.add_checkpoint(data["b"])
    panel.add_training_run(data["run"])
    assert len(panel.checkpoints) == 4
    panel.row_added.connect(lambda row: panel.cancel())  # cancel as soon as the first checkpoint is measured
    assert run_and_wait(qtbot, panel) == "cancelled"
    assert 1 <= len(panel.results) < 4 and panel.table.rowCount() == len(panel.results)
    assert panel.threads_alive() == 0 and not panel.running
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.export_button.isEnabled() and "Cancelled" in panel.status.text()


def test_training_run_listed_by_step(panel: FidPanel, data: dict[str, Any]) -> None:
    found = run_checkpoints(data["run"])
    assert [s for s, _ in found] == [2, 4]
    assert run_checkpoints(data["run"] / "checkpoints") == found
    assert panel.add_checkpoint(data["run"])  # a run folder added as a "checkpoint" adds its checkpoints
    assert [s for _, s in panel.checkpoints] == [2, 4]
    labels = [panel.checkpoint_list.item(i).text() for i in range(panel.checkpoint_list.count())]
    assert labels[0].startswith("step-2") and "(step 2)" in labels[0] and "(step 4)" in labels[1]
    panel.add_training_run(data["run"])  # again: no duplicates
    assert len(panel.checkpoints) == 2
    assert not panel.add_checkpoint(data["ref"]) and "not a checkpoint" in panel.status.text()


def test_inputs_missing_refuse_to_start(panel: FidPanel, data: dict[str, Any]) -> None:
    assert not panel.start() and "reference" in panel.status.text()
    panel.set_reference(data["ref"])
    assert not panel.start() and "checkpoint" in panel.status.text()
    assert not panel.running


def test_open_fid_panel_reuses_window_and_close_stops_thread(qtbot: Any, host: PluginHost, data: dict[str, Any],
                                                            tmp_path: Path) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    dialog = open_fid_panel(parent, host=host, extractor_factory=MeanColour, cache_root=tmp_path / "cache")
    assert isinstance(dialog, FidDialog) and dialog.isVisible()
    assert open_fid_panel(parent) is dialog
    panel = dialog.panel
    panel.set_reference(data["ref"])
    panel.add_training_run(data["run"])
    panel.samples_spin.setValue(4)
    panel.steps_spin.setValue(2)
    with qtbot.waitSignal(panel.run_started, timeout=LONG):
        panel.start()
    assert panel.running
    dialog.close()  # closing the window cancels the run and waits for its thread
    assert not panel.running and panel.threads_alive() == 0 and panel.state in ("cancelled", "finished")
