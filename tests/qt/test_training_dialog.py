"""The training dialog: data summary (and a clear error), a tiny run with live progress, pause/resume,
stop with a checkpoint the model list finds, user-chosen model folders saved, and no thread left."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer

from diffedit.models_registry import find_models, model_folders
from diffedit.qt.training_dialog import RUNS_FOLDER, TrainingDialog, default_model_folder, open_training_dialog
from diffedit.settings import Settings

LONG = 30_000  # ms


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty model folder on DIFFEDIT_MODEL_PATH and private settings."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("DIFFEDIT_MODEL_PATH", str(models))
    monkeypatch.setenv("DIFFEDIT_CONFIG_DIR", str(tmp_path / "config"))
    return models


def make_data(root: Path, n: int = 8, classes: tuple[str, ...] = ("red", "blue"), broken: bool = False) -> Path:
    """Tiny 20 px PNGs (a disc on a flat background) in one sub-folder per class."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / classes[i % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        img = np.full((20, 20, 3), 40, np.uint8)
        yy, xx = np.mgrid[:20, :20]
        cx, cy = rng.uniform(6, 14, 2)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 25] = (230, 60, 60) if i % 2 == 0 else (70, 90, 230)
        Image.fromarray(img).save(folder / f"img{i:02d}.png")
    if broken:
        (root / classes[0] / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture
def dialog(qtbot, env: Path) -> Iterator[TrainingDialog]:
    dlg = TrainingDialog()
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    yield dlg
    assert dlg.shutdown(LONG)
    assert dlg.threads_alive() == 0


def tiny_settings(dlg: TrainingDialog, data: Path, steps: int, every: int) -> None:
    dlg.set_folder(data)
    dlg.size_combo.setCurrentIndex(dlg.size_combo.findData(16))
    dlg.steps_spin.setValue(steps)
    dlg.batch_spin.setValue(4)
    dlg.every_spin.setValue(every)
    dlg.device_combo.setCurrentText("cpu")
    dlg.overrides = {"lr": 1e-3, "sample_steps": 2, "sample_count": 2, "val_fraction": 0.0}


def test_summary_and_clear_errors(qtbot, dialog: TrainingDialog, env: Path, tmp_path: Path) -> None:
    assert default_model_folder() == env  # the first writable model folder
    assert dialog.out_edit.text() == str(env)
    data = make_data(tmp_path / "shapes", broken=True)
    dialog.cond_combo.setCurrentIndex(dialog.cond_combo.findData("class"))
    with qtbot.waitSignal(dialog.summary_changed, timeout=LONG):
        dialog.set_folder(data)
    qtbot.waitUntil(lambda: dialog.summary is not None and dialog.summary.images == 8, timeout=LONG)
    text = dialog.summary_label.text()
    assert "8 images" in text and "2 classes (blue, red)" in text and "1 skipped" in text, text
    assert "broken.png" in dialog.summary_label.toolTip()
    assert dialog.name_edit.text() == "shapes-generate-tiny"
    assert dialog.batch_spin.value() == 16  # the default: more than the folder holds
    assert "fewer than the batch size 16" in dialog.summary_label.text() and not dialog.start_button.isEnabled()
    dialog.batch_spin.setValue(4)
    assert dialog.start_button.isEnabled()

    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(dialog.summary_changed, timeout=LONG):
        dialog.set_folder(empty)
    qtbot.waitUntil(lambda: "No usable images" in dialog.summary_label.text(), timeout=LONG)
    assert not dialog.start_button.isEnabled()

    with qtbot.waitSignal(dialog.summary_changed, timeout=LONG) as blocker:
        dialog.set_folder(tmp_path / "missing")
    assert blocker.args == [None]
    assert "not a folder" in dialog.summary_label.text() and not dialog.start_button.isEnabled()


def test_train_pause_resume_stop(qtbot, dialog: TrainingDialog, env: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "shapes")
    chosen = tmp_path / "my-models"  # a folder the user picked: it becomes a model folder
    dialog.out_edit.setText(str(chosen))
    tiny_settings(dialog, data, steps=40, every=3)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=LONG)
    published: list[str] = []
    dialog.on_checkpoint = published.append
    steps_seen: list[int] = []
    dialog.progressed.connect(lambda p: steps_seen.append(p.step))

    # the GUI thread keeps running its timers while training runs in the background
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()

    dialog.start()
    assert dialog.state == "starting" and dialog.pause_button.isEnabled()
    qtbot.waitUntil(lambda: len(steps_seen) >= 2, timeout=LONG)
    assert dialog.chart.points and dialog.step_label.text().startswith("Step ")
    assert dialog.progress_bar.value() >= 1
    with qtbot.waitSignal(dialog.run_ended, timeout=LONG) as ended:
        dialog.pause()
    assert ended.args == ["paused"] and dialog.state == "paused"
    paused_at = dialog.last_step
    run = chosen / RUNS_FOLDER / "shapes-generate-tiny"
    assert (run / "checkpoints" / f"step-{paused_at:06d}").is_dir()  # pause saved the current step
    assert dialog.threads_alive() == 0  # nothing holds a thread while paused
    assert dialog.resume_button.isEnabled() and not dialog.start_button.isEnabled()
    assert dialog.sample_label.pixmap() is not None and not dialog.sample_label.pixmap().isNull()

    points_before = len(dialog.chart.points)
    with qtbot.waitSignal(dialog.progressed, timeout=LONG) as first:
        dialog.resume()
    assert first.args[0].step == paused_at + 1  # continues, does not restart
    with qtbot.waitSignal(dialog.run_ended, timeout=LONG) as ended:
        dialog.stop()
    timer.stop()
    assert ended.args == ["stopped"] and dialog.state == "stopped", dialog.status_label.text()
    assert len(dialog.chart.points) > points_before
    assert dialog.last_step < 40
    assert steps_seen == sorted(steps_seen)

    model = chosen / "shapes-generate-tiny"
    assert published and published[-1] == str(model)
    assert [m.path for m in find_models([chosen])] == [model]  # the run folder itself is no model
    assert str(chosen) in Settings.load().model_folders  # saved, so the task panel lists it
    assert model in [m.path for m in find_models(model_folders())]
    gaps = np.diff(ticks)
    assert len(ticks) > 5 and gaps.max() < 2.0, f"GUI blocked for {gaps.max():.2f} s"
    assert dialog.threads_alive() == 0


def test_close_while_training_stops_the_thread(qtbot, env: Path, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    dlg = open_training_dialog(parent)
    data = make_data(tmp_path / "shapes")
    tiny_settings(dlg, data, steps=500, every=500)
    qtbot.waitUntil(dlg.start_button.isEnabled, timeout=LONG)
    dlg.start()
    qtbot.waitUntil(lambda: dlg.last_step >= 1, timeout=LONG)
    thread = dlg._thread
    assert thread is not None
    with qtbot.waitSignal(dlg.finished, timeout=LONG):  # QDialog.finished: it has closed
        dlg.close()  # asks the run to stop; the dialog closes once the thread is done
        assert dlg.isVisible()  # not closed under a running thread
    assert not thread.isRunning()
    # stopped before any checkpoint step: one was written at the last step so the work is kept
    assert find_models([env]) and find_models([env])[0].name == "shapes-generate-tiny"


def test_form_fields_build_the_config(qtbot, dialog: TrainingDialog, env: Path, tmp_path: Path) -> None:
    from diffedit.training.config import TrainConfig

    defaults = TrainConfig(data="", out="")
    data = make_data(tmp_path / "shapes")
    dialog.set_folder(data)
    config = dialog.build_config()
    assert (config.lr, config.precision, config.latent, config.vae) == (defaults.lr, "auto", False, None)
    assert config.text_encoder == "minilm"
    assert dialog.lr_spin.text() == "0.0002"
    assert config.time_limit is None and dialog.time_limit_spin.text() == "no limit"
    dialog.time_limit_spin.setValue(90)
    assert dialog.build_config().time_limit == 90 * 60.0  # minutes in the form, seconds in the config
    dialog.time_limit_spin.setValue(0)
    assert config.loss == "mse" and dialog.loss_combo.isEnabled()
    dialog.loss_combo.setCurrentText("log-mse")
    assert dialog.build_config().loss == "log-mse"
    dialog.task_combo.setCurrentText("vae")  # a VAE trains with L1 + KL: the choice does not apply
    assert not dialog.loss_combo.isEnabled() and dialog.build_config().loss == "mse"
    dialog.task_combo.setCurrentText("generate")
    dialog.loss_combo.setCurrentText("mse")

    dialog.lr_spin.setValue(5e-5)
    dialog.precision_combo.setCurrentText("bf16")
    vae = tmp_path / "vae-run"
    vae.mkdir()
    dialog.latent_check.setChecked(True)
    dialog.vae_edit.setText(str(vae))
    config = dialog.build_config()
    assert config.lr == pytest.approx(5e-5) and dialog.lr_spin.text() == "5e-05"
    assert (config.precision, config.latent, config.vae) == ("bf16", True, str(vae))
    dialog.lr_spin.stepBy(1)  # 1-2-5 steps
    assert dialog.lr_spin.value() == pytest.approx(1e-4)
    dialog.lr_spin.setValue(1.0)  # clamped to the range
    assert dialog.lr_spin.value() == pytest.approx(1e-2)

    dialog.overrides = {"lr": 3e-3, "precision": "fp32"}  # overrides still win
    config = dialog.build_config()
    assert (config.lr, config.precision) == (3e-3, "fp32")
    dialog.overrides = {}

    encoder = tmp_path / "sd"
    (encoder / "text_encoder").mkdir(parents=True)
    (encoder / "tokenizer").mkdir()
    dialog.cond_combo.setCurrentIndex(dialog.cond_combo.findData("text"))
    dialog.text_combo.setCurrentIndex(dialog.text_combo.findData("folder"))
    dialog.text_edit.setText(str(encoder))
    assert dialog.build_config().text_encoder == str(encoder)
    dialog.cond_combo.setCurrentIndex(dialog.cond_combo.findData("class"))  # only text conditioning uses it
    assert dialog.build_config().text_encoder == "minilm"

    dialog.task_combo.setCurrentText("vae")  # trains the VAE itself: never latent
    config = dialog.build_config()
    assert (config.task, config.latent, config.vae, config.conditioning) == ("vae", False, None, None)
    assert not dialog.latent_check.isEnabled()


def test_latent_needs_a_vae_folder(qtbot, dialog: TrainingDialog, env: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "shapes")
    dialog.batch_spin.setValue(4)
    dialog.set_folder(data)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=LONG)
    assert not dialog.vae_edit.isEnabled() and dialog.settings_label.isHidden()

    dialog.latent_check.setChecked(True)
    assert dialog.vae_edit.isEnabled() and dialog.vae_browse.isEnabled()
    assert not dialog.start_button.isEnabled() and not dialog.can_start()
    assert not dialog.settings_label.isHidden() and "needs a VAE folder" in dialog.settings_label.text()
    dialog.start()  # does nothing
    assert dialog.state == "idle" and not dialog.running

    dialog.vae_edit.setText(str(tmp_path / "missing"))
    assert "does not exist" in dialog.settings_label.text() and not dialog.start_button.isEnabled()
    (tmp_path / "vae-run").mkdir()
    dialog.vae_edit.setText(str(tmp_path / "vae-run"))
    assert dialog.settings_label.isHidden() and dialog.start_button.isEnabled()
    dialog.latent_check.setChecked(False)
    dialog.vae_edit.clear()
    assert dialog.start_button.isEnabled()  # not needed when not latent
    dialog.latent_check.setChecked(True)
    dialog.task_combo.setCurrentText("vae")  # the checkbox does not apply to a VAE run
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=LONG)
    assert dialog.settings_label.isHidden()


def test_text_encoder_row_only_for_text(qtbot, dialog: TrainingDialog, env: Path, tmp_path: Path) -> None:
    assert dialog.text_row.isHidden()
    assert dialog.text_combo.currentText() == "MiniLM (built in)"
    dialog.cond_combo.setCurrentIndex(dialog.cond_combo.findData("text"))
    assert not dialog.text_row.isHidden() and dialog.text_row.isVisible()
    assert not dialog.text_edit.isEnabled()  # MiniLM needs no folder
    dialog.text_combo.setCurrentIndex(dialog.text_combo.findData("folder"))
    assert dialog.text_edit.isEnabled() and "text encoder folder" in dialog.settings_problem()
    dialog.text_edit.setText(str(tmp_path))
    assert "no text encoder here" in dialog.settings_label.text()
    dialog.cond_combo.setCurrentIndex(dialog.cond_combo.findData("class"))
    assert dialog.text_row.isHidden() and dialog.settings_problem() == ""
    dialog.cond_combo.setCurrentIndex(dialog.cond_combo.findData("text"))
    dialog.task_combo.setCurrentText("inpaint")  # conditioned on the image: no text
    assert dialog.text_row.isHidden()


def test_vae_task_runs_and_stops(qtbot, dialog: TrainingDialog, env: Path, tmp_path: Path) -> None:
    data = make_data(tmp_path / "shapes")
    dialog.task_combo.setCurrentText("vae")
    tiny_settings(dialog, data, steps=200, every=200)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=LONG)
    assert dialog.name_edit.text() == "shapes-vae-tiny"
    published: list[str] = []
    dialog.on_checkpoint = published.append
    dialog.start()
    assert dialog.pause_button.isEnabled()  # a VAE run resumes like any run
    qtbot.waitUntil(lambda: dialog.last_step >= 1, timeout=LONG)
    with qtbot.waitSignal(dialog.run_ended, timeout=LONG) as ended:
        dialog.stop()
    assert ended.args == ["stopped"] and dialog.state == "stopped", dialog.status_label.text()
    run = env / RUNS_FOLDER / "shapes-vae-tiny"
    assert (run / "vae" / "config.json").is_file()  # stopped before a checkpoint step: saved then
    assert list((run / "checkpoints").glob("step-*/config.json"))  # and a checkpoint to resume from
    assert (run / "metrics.jsonl").is_file()
    assert dialog.last_checkpoint == str(run / "vae") and not published  # not published as a model
    assert find_models([env]) == []
    assert dialog.resume_button.isEnabled()
    assert dialog.threads_alive() == 0
