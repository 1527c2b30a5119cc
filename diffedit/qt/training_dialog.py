"""The training dialog: choose data and settings, see the data summary, then train with a live loss
chart, the latest sample grid, speed and time left; pause, resume and stop.

Threads: the data summary and the run each go to their own QThread (the workers.py pattern: a QObject
worker moved to the thread, `done` connected directly to `thread.quit`). The dialog re-emits what
the workers report from its own (GUI-thread) signals, which is what callers and tests connect to.

Pause asks the worker to stop iterating after the current step and write a checkpoint of that step
(unless one was just written); Resume starts a new Trainer with `resume=True`, which restores weights,
optimizer, schedule and RNG exactly. Stop ends after the current step and keeps the checkpoints
written so far. Nothing holds a thread while paused, so closing a paused dialog loses nothing.

Where runs go: `<models>/training-runs/<name>/` holds the run (checkpoints, state, samples, metrics)
and every checkpoint is published as `<models>/<name>/` (hard links, no copies), a plain checkpoint
folder that the task panel's model list shows. `<models>` is a model folder from the settings (the
first writable one by default); a folder the user picks is added to `Settings.model_folders`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QPixmap, QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from diffedit.diffusion.devices import DEVICES
from diffedit.models_registry import SHIPPED_MODELS, model_folders
from diffedit.qt.loss_chart import LossChart
from diffedit.qt.workers import HEAVY_IMPORT_LOCK, error_text
from diffedit.settings import Settings, config_dir
from diffedit.training.config import LOSSES, Progress, TrainConfig
from diffedit.training.data import IMAGE_EXTENSIONS, DataSummary, summarize

# setup.TRAINABLE_TASKS (without importing torch), plus "vae": the AutoencoderKL that latent runs train on
TASKS = ("generate", "inpaint", "super-resolve", "restore", "segment", "vae")
PRESET_NAMES = ("tiny", "conv", "small", "base")  # diffusion.models.PRESETS, without importing torch
CONDITIONINGS = {"none": "None (unconditional)", "class": "Class (one sub-folder per class)",
                 "text": "Text (a .txt caption beside each image)"}
SIZES = (16, 32, 64, 128, 256, 512)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
TEXT_ENCODERS = {"minilm": "MiniLM (built in)", "folder": "A folder with text_encoder/ and tokenizer/"}
LR_RANGE = (1e-6, 1e-2)
_DEFAULTS = TrainConfig(data="", out="")
RUNS_FOLDER = "training-runs"
EMIT_INTERVAL_S = 0.1  # progress reaches the GUI at most ~10 times a second (checkpoints always)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _writable(folder: Path) -> bool:
    """The folder can be written, or created inside its nearest existing parent."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def default_model_folder(settings: Settings | None = None) -> Path:
    """The first writable model folder (the shipped models' folder only when nothing else is set)."""
    folders = [f for f in model_folders(settings) if f.resolve() != SHIPPED_MODELS.resolve()]
    for folder in folders:
        if _writable(folder):
            return folder
    return config_dir() / "models"


def register_model_folder(folder: Path) -> bool:
    """Add `folder` to the settings' model folders (unless some model folder is it already); True if added."""
    settings = Settings.load()
    known = {p.resolve() for p in model_folders(settings)}
    if folder.resolve() in known:
        return False
    settings.model_folders.append(str(folder))
    settings.save()
    return True


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def publish_checkpoint(checkpoint: Path, target: Path) -> Path:
    """Make `target` a copy (hard links where possible) of `checkpoint`, replacing an older one."""
    if target.exists() and not (target / "diffedit.json").is_file():
        raise OSError(f"{target}: exists and is not a DiffEdit checkpoint; choose another model name")
    tmp = target.with_name(f".{target.name}.publishing")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint, tmp, copy_function=_link_or_copy)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)
    return target


# -- workers -------------------------------------------------------------------------------------------
class SummaryWorker(QObject):
    """Scans a folder (decoding every image, so it may take a while) off the GUI thread."""

    finished = Signal(object, object)  # key, DataSummary
    failed = Signal(object, str)  # key, message
    done = Signal()

    def __init__(self, key: tuple[str, str, str]) -> None:
        super().__init__()
        self.key = key

    @Slot()
    def run(self) -> None:
        folder, task, conditioning = self.key
        try:
            self.finished.emit(self.key, summarize(folder, task, conditioning))
        except Exception as exc:  # DataError for a missing folder; anything else is shown, never raised
            self.failed.emit(self.key, error_text(exc))
        finally:
            self.done.emit()


class TrainWorker(QObject):
    """Runs `Trainer(config).run()` until it ends or the dialog asks it to pause or stop."""

    started_run = Signal(int)  # the step the run starts from (> 0 when resumed)
    progress = Signal(object)  # list[Progress] since the last emit
    published = Signal(str)  # a checkpoint folder published into the model folder
    paused = Signal(int)  # step
    stopped = Signal(int)  # step
    finished = Signal(int)  # step (the run reached its total)
    failed = Signal(str, str)  # message, details
    done = Signal()

    def __init__(self, config: TrainConfig, publish_to: Path | None) -> None:
        super().__init__()
        self.config = config
        self.publish_to = publish_to
        self.request = ""  # "" | "pause" | "stop": set from the GUI thread, read between steps

    def ask(self, what: str) -> None:
        """Thread-safe: the run ends after its current step (pause also writes a checkpoint)."""
        self.request = what

    def _publish(self, folder: Path) -> None:
        if self.publish_to is not None:
            self.published.emit(str(publish_checkpoint(folder, self.publish_to)))

    @Slot()
    def run(self) -> None:
        step = 0
        try:
            with HEAVY_IMPORT_LOCK:
                import torch

                from diffedit.training.loop import Trainer
                from diffedit.training.vae import VAETrainer
            torch.set_num_threads(torch.get_num_threads())  # this thread follows the app's thread setting
            # the same choice as `diffedit train`: --task vae trains the autoencoder of latent runs
            trainer = VAETrainer(self.config) if self.config.task == "vae" else Trainer(self.config)
            step = trainer.step
            self.started_run.emit(step)
            pending: list[Progress] = []
            last_emit = 0.0
            run = trainer.run()
            try:
                for p in run:
                    step = p.step
                    pending.append(p)
                    now = time.monotonic()
                    ending = bool(self.request) or p.step >= p.total
                    if p.checkpoint or ending or now - last_emit >= EMIT_INTERVAL_S:
                        self.progress.emit(pending)
                        pending, last_emit = [], now
                    if p.checkpoint:
                        self._publish(Path(p.checkpoint))
                    if self.request:
                        break
            finally:
                run.close()  # closes the metrics log
            if self.request == "pause" or (self.request == "stop" and trainer.last_checkpoint is None):
                self._checkpoint_now(trainer)
            if trainer.step >= self.config.steps:
                self.finished.emit(step)
            elif self.request == "pause":
                self.paused.emit(step)
            else:
                self.stopped.emit(step)
        except Exception as exc:  # TrainingError, DataError, DeviceError... become a message, never a crash
            self.failed.emit(error_text(exc), traceback.format_exc())
        finally:
            self.done.emit()

    def _checkpoint_now(self, trainer: Any) -> None:
        """A checkpoint of the current step, unless the run just wrote one (the loop's own save)."""
        from diffedit.training import state

        if self.config.task == "vae":  # a VAE run saves checkpoints/step-N and OUT/vae, no sample grid
            if trainer.step == 0 or trainer.saved_step == trainer.step:
                return
            folder, val = trainer.checkpoint()
            p = Progress(trainer.step, self.config.steps, math.nan, 0.0, 0.0, 0.0, 0.0, val, str(folder))
            self.progress.emit([p])
            return
        if trainer.step == 0 or trainer.last_checkpoint == state.step_folder(trainer.out, trainer.step):
            return
        # Trainer has no public "checkpoint now"; _checkpoint is what the loop itself calls at a save step.
        folder, val, grid = trainer.checkpoint()
        p = Progress(trainer.step, self.config.steps, math.nan, 0.0, 0.0, 0.0, 0.0, val, str(folder), str(grid))
        self.progress.emit([p])
        self._publish(folder)


# -- the dialog ----------------------------------------------------------------------------------------
class TrainingDialog(QDialog):
    """Settings, data summary, live progress and run control; see the module docstring."""

    summary_changed = Signal(object)  # DataSummary, or None when the folder cannot be used
    run_started = Signal()
    progressed = Signal(object)  # Progress (each step, GUI thread)
    checkpoint_saved = Signal(str)  # a published checkpoint folder (the model list can show it now)
    run_ended = Signal(str)  # "finished" | "paused" | "stopped" | "failed"

    def __init__(self, parent: QWidget | None = None, on_checkpoint: Callable[[str], None] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setModal(False)
        self.on_checkpoint = on_checkpoint
        self.overrides: dict[str, Any] = {}  # extra TrainConfig fields (advanced use and tests)
        self.summary: DataSummary | None = None
        self.summary_error = ""
        self.state = "idle"  # idle | starting | running | pausing | stopping | paused | finished | stopped | failed
        self.run_folder: Path | None = None
        self.model_folder: Path | None = None
        self.last_step = 0
        self.last_checkpoint: str | None = None
        self._config: TrainConfig | None = None
        self._close_when_done = False
        self._outcome: tuple[str, str, bool] | None = None
        self._thread: QThread | None = None
        self._worker: TrainWorker | None = None
        self._sum_thread: QThread | None = None
        self._sum_worker: SummaryWorker | None = None
        self._sum_key: tuple[str, str, str] | None = None
        self._sum_again = False
        self._name_auto = True
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(250)
        self._summary_timer.timeout.connect(self.refresh_summary)
        self._build()
        self._update_buttons()

    # -- layout ----------------------------------------------------------------------------------------
    def _build(self) -> None:
        settings = QGroupBox("Data and settings")
        form = QFormLayout(settings)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("A folder of images (sub-folders = classes, name.txt = caption)")
        self.folder_edit.textChanged.connect(self._data_changed)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse_data)
        form.addRow("Images", _row(self.folder_edit, browse))
        self.summary_label = QLabel("Choose a folder of training images.")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("", self.summary_label)
        self.task_combo = QComboBox()
        self.task_combo.addItems(list(TASKS))
        self.task_combo.currentTextChanged.connect(self._task_changed)
        form.addRow("Task", self.task_combo)
        self.cond_combo = QComboBox()
        for key, label in CONDITIONINGS.items():
            self.cond_combo.addItem(label, key)
        self.cond_combo.currentIndexChanged.connect(self._data_changed)
        form.addRow("Conditioning", self.cond_combo)
        self.text_combo = QComboBox()
        for key, label in TEXT_ENCODERS.items():
            self.text_combo.addItem(label, key)
        self.text_combo.setToolTip("The frozen text encoder that reads the captions")
        self.text_combo.currentIndexChanged.connect(self._settings_changed)
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText("A checkpoint or Stable Diffusion folder (text_encoder/ and tokenizer/)")
        self.text_edit.textChanged.connect(self._settings_changed)
        self.text_browse = QPushButton("Browse…")
        self.text_browse.clicked.connect(self.browse_text_encoder)
        self.text_row = _row(self.text_combo, self.text_edit, self.text_browse)
        form.addRow("Text encoder", self.text_row)
        self.latent_check = QCheckBox("Latent (train in a VAE's latent space)")
        self.latent_check.setToolTip("Train on the latents of a VAE: first run the task 'vae', then choose its "
                                     "run folder here")
        self.latent_check.toggled.connect(self._settings_changed)
        self.vae_edit = QLineEdit()
        self.vae_edit.setPlaceholderText("A 'vae' run's folder, an AutoencoderKL, or a checkpoint with vae/")
        self.vae_edit.textChanged.connect(self._settings_changed)
        self.vae_browse = QPushButton("Browse…")
        self.vae_browse.clicked.connect(self.browse_vae)
        form.addRow("Latent", _row(self.latent_check, self.vae_edit, self.vae_browse))
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESET_NAMES))
        self.preset_combo.setToolTip("tiny: ~1 M parameters, for trying things out; conv: ~10 M, convolutional, "
                                     "for restoration; small: ~20 M; base: ~100 M")
        self.preset_combo.currentTextChanged.connect(self._settings_changed)
        form.addRow("Preset", self.preset_combo)
        self.size_combo = QComboBox()
        self.size_combo.addItem("Preset default", None)
        for s in SIZES:
            self.size_combo.addItem(f"{s} × {s} px", s)
        form.addRow("Size", self.size_combo)
        self.steps_spin = _spin(1, 10_000_000, 1000, "Optimizer steps of the whole run (may be raised at Resume)")
        self.batch_spin = _spin(1, 4096, 16, "Images per step")
        self.batch_spin.valueChanged.connect(self._show_summary)
        self.every_spin = _spin(1, 10_000_000, 500, "Write a checkpoint (and a sample grid) every N steps")
        steps_row = _row(self.steps_spin, QLabel("  batch"), self.batch_spin, QLabel("  checkpoint every"),
                         self.every_spin, stretch=True)
        form.addRow("Steps", steps_row)
        self.time_limit_spin = _spin(0, 100_000, 0, "Stop after this many minutes, with the learning-rate schedule "
                                     "fitted to the steps that fit (Steps stays the upper bound); 0: no limit")
        self.time_limit_spin.setSuffix(" min")
        self.time_limit_spin.setSpecialValueText("no limit")
        form.addRow("Time limit", _row(self.time_limit_spin, stretch=True))
        self.lr_spin = LearningRateSpin()
        self.lr_spin.setValue(_DEFAULTS.lr)
        self.lr_spin.setToolTip("Peak learning rate (after warm-up); arrows step 1-2-5")
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(list(PRECISIONS))
        self.precision_combo.setCurrentText(_DEFAULTS.precision)
        self.precision_combo.setToolTip("auto: bf16 where the GPU supports it, else fp16")
        precision_note = QLabel("half precision (fp16/bf16) applies on CUDA only; elsewhere fp32")
        precision_note.setEnabled(False)  # greyed: a note, not a setting
        self.loss_combo = QComboBox()
        self.loss_combo.addItems(list(LOSSES))
        self.loss_combo.setToolTip("mse: the mean squared error; log-mse: the mean of each image's log error, i.e. "
                                   "the mean PSNR, so that light damage weighs as much as heavy damage in a "
                                   "repair model (a VAE always trains with L1 + KL)")
        form.addRow("Learning rate", _row(self.lr_spin, QLabel("  precision"), self.precision_combo,
                                          precision_note, stretch=True))
        form.addRow("Loss", _row(self.loss_combo, stretch=True))
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        preferred = Settings.load().device
        self.device_combo.setCurrentText(preferred if preferred in DEVICES else "auto")
        form.addRow("Device", self.device_combo)
        self.out_edit = QLineEdit(str(default_model_folder()))
        self.out_edit.setToolTip("A model folder: the trained model appears in the task panel's model list")
        self.out_edit.textChanged.connect(self._settings_changed)
        out_browse = QPushButton("Browse…")
        out_browse.clicked.connect(self.browse_output)
        form.addRow("Save in", _row(self.out_edit, out_browse))
        self.name_edit = QLineEdit()
        self.name_edit.textEdited.connect(self._name_edited)
        self.name_edit.textChanged.connect(self._update_buttons)
        form.addRow("Model name", self.name_edit)
        self.settings_label = QLabel("")  # why these settings cannot start (a missing VAE folder...)
        self.settings_label.setWordWrap(True)
        self.settings_label.setStyleSheet("color: #c0392b;")
        self.settings_label.hide()
        form.addRow("", self.settings_label)
        self._form = form
        self._settings_widgets: list[QWidget] = [self.folder_edit, browse, self.task_combo, self.cond_combo,
                                                 self.text_combo, self.text_edit, self.text_browse,
                                                 self.latent_check, self.vae_edit, self.vae_browse,
                                                 self.preset_combo, self.size_combo, self.batch_spin,
                                                 self.every_spin, self.lr_spin, self.precision_combo,
                                                 self.loss_combo, self.device_combo, self.out_edit, out_browse,
                                                 self.name_edit]

        live = QGroupBox("Training")
        grid = QGridLayout(live)
        self.chart = LossChart()
        grid.addWidget(self.chart, 0, 0, 1, 2)
        self.sample_label = QLabel("Sample images appear at each checkpoint")
        self.sample_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.sample_label.setMinimumSize(200, 140)
        self.sample_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.sample_label.setWordWrap(True)
        grid.addWidget(self.sample_label, 0, 2)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        grid.addWidget(self.progress_bar, 1, 0, 1, 3)
        self.step_label = QLabel("Step –")
        self.loss_label = QLabel("Loss –")
        self.speed_label = QLabel("– images/s")
        self.eta_label = QLabel("Time left –")
        stats = _row(self.step_label, self.loss_label, self.speed_label, self.eta_label)
        grid.addWidget(stats, 2, 0, 1, 3)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.status_label, 3, 0, 1, 3)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(2, 2)
        grid.setRowStretch(0, 1)

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Finish the current step, save a checkpoint and wait")
        self.pause_button.clicked.connect(self.pause)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue from the last checkpoint of this run")
        self.resume_button.clicked.connect(self.resume)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("End the run after the current step, keeping its checkpoints")
        self.stop_button.clicked.connect(self.stop)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.resume_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)

        top = QVBoxLayout(self)
        top.addWidget(settings)
        top.addWidget(live, 1)
        top.addLayout(buttons)
        self.resize(860, 700)
        self._task_changed(self.task_combo.currentText())

    # -- settings --------------------------------------------------------------------------------------
    def browse_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training images", self.folder_edit.text() or str(Path.home()))
        if folder:
            self.folder_edit.setText(folder)

    def browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save models in", self.out_edit.text() or str(Path.home()))
        if folder:
            self.out_edit.setText(folder)

    def browse_vae(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "VAE folder", self.vae_edit.text() or str(Path.home()))
        if folder:
            self.vae_edit.setText(folder)
            self.latent_check.setChecked(True)

    def browse_text_encoder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Text encoder folder (text_encoder/ and tokenizer/)",
                                                  self.text_edit.text() or str(Path.home()))
        if folder:
            self.text_edit.setText(folder)
            self.text_combo.setCurrentIndex(self.text_combo.findData("folder"))

    def set_folder(self, folder: str | Path) -> None:
        self.folder_edit.setText(str(folder))
        self._summary_timer.stop()
        self.refresh_summary()

    def conditioning(self) -> str | None:
        """None for the task's default (the conditioning choice applies to generate only)."""
        return self.cond_combo.currentData() if self.task_combo.currentText() == "generate" else None

    def _task_changed(self, task: str) -> None:
        generate = task == "generate"
        self.cond_combo.setEnabled(generate and self.state in ("idle", "finished", "stopped", "failed"))
        self.cond_combo.setToolTip("" if generate else "a VAE has no conditioning" if task == "vae"
                                   else f"'{task}' models are conditioned on the input image")
        self.latent_check.setToolTip("A VAE run trains the autoencoder itself" if task == "vae" else
                                     "Train on the latents of a VAE: first run the task 'vae', then choose its "
                                     "run folder here")
        self._data_changed()

    def latent(self) -> bool:
        """Latent training is asked for (never for the task 'vae', which trains the VAE itself)."""
        return self.latent_check.isChecked() and self.task_combo.currentText() != "vae"

    def text_encoder(self) -> str:
        """TrainConfig.text_encoder: "minilm" or a folder (used by text conditioning only)."""
        if self.text_combo.currentData() == "folder":
            return str(Path(self.text_edit.text().strip()).expanduser())
        return "minilm"

    def settings_problem(self) -> str:
        """Why the chosen settings (not the data) cannot start a run ("" when they can)."""
        if self.latent():
            vae = self.vae_edit.text().strip()
            if not vae:
                return "Latent training needs a VAE folder: choose one (e.g. the run folder of a 'vae' task run)."
            if not Path(vae).expanduser().is_dir():
                return f"The VAE folder {vae} does not exist."
        if self.conditioning() == "text" and self.text_combo.currentData() == "folder":
            folder = self.text_edit.text().strip()
            if not folder:
                return "Choose the text encoder folder (one with text_encoder/ and tokenizer/), or use MiniLM."
            path = Path(folder).expanduser()
            if not (path / "text_encoder").is_dir() or not (path / "tokenizer").is_dir():
                return f"{folder}: no text encoder here (expected text_encoder/ and tokenizer/ folders)."
        return ""

    def _data_changed(self, *_: Any) -> None:
        self._settings_changed()
        self.summary = None
        self._summary_timer.start()
        self._update_buttons()

    def _name_edited(self, _text: str) -> None:
        self._name_auto = False

    def _settings_changed(self, *_: Any) -> None:
        if self._name_auto and self.state in ("idle", "finished", "stopped", "failed"):
            self.name_edit.setText(self._suggest_name())
        self._update_buttons()

    def _suggest_name(self) -> str:
        data = Path(self.folder_edit.text().strip() or "data").name or "data"
        base = f"{data}-{self.task_combo.currentText()}-{self.preset_combo.currentText()}"
        parent = Path(self.out_edit.text().strip() or ".")
        name, n = base, 2
        while (parent / name).exists() or (parent / RUNS_FOLDER / name).exists():
            name, n = f"{base}-{n}", n + 1
        return name

    def build_config(self, resume: bool = False) -> TrainConfig:
        parent = Path(self.out_edit.text().strip()).expanduser()
        name = self.name_edit.text().strip()
        latent = self.latent()
        values: dict[str, Any] = {
            "data": self.folder_edit.text().strip(), "out": str(parent / RUNS_FOLDER / name),
            "task": self.task_combo.currentText(), "preset": self.preset_combo.currentText(),
            "size": self.size_combo.currentData(), "steps": self.steps_spin.value(), "batch": self.batch_spin.value(),
            "checkpoint_every": self.every_spin.value(), "device": self.device_combo.currentText(),
            "conditioning": self.conditioning(), "lr": self.lr_spin.value(),
            "precision": self.precision_combo.currentText(), "latent": latent,
            "vae": str(Path(self.vae_edit.text().strip()).expanduser()) if latent else None,
            "text_encoder": self.text_encoder() if self.conditioning() == "text" else _DEFAULTS.text_encoder,
            "resume": resume, "time_limit": self.time_limit_spin.value() * 60.0 or None,
            "loss": self.loss_combo.currentText() if self.task_combo.currentText() != "vae" else "mse"}
        values.update(self.overrides)
        return TrainConfig(**values)

    # -- data summary ----------------------------------------------------------------------------------
    def refresh_summary(self) -> None:
        folder = self.folder_edit.text().strip()
        if not folder:
            self.summary, self.summary_error = None, ""
            self.summary_label.setText("Choose a folder of training images.")
            self._update_buttons()
            return
        key = (folder, self.task_combo.currentText(), self.conditioning() or "concat")
        if self._sum_thread is not None:  # one scan at a time; the newest request runs next
            self._sum_again = True
            return
        self._sum_key = key
        self.summary_label.setText(f"Reading {folder}…")
        thread = QThread()
        thread.setObjectName("diffedit-training-summary")
        worker = SummaryWorker(key)
        worker.moveToThread(thread)
        worker.finished.connect(self._on_summary)
        worker.failed.connect(self._on_summary_failed)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_summary_thread_finished)
        self._sum_thread, self._sum_worker = thread, worker
        thread.start()

    def _current_key(self) -> tuple[str, str, str]:
        return (self.folder_edit.text().strip(), self.task_combo.currentText(), self.conditioning() or "concat")

    @Slot(object, object)
    def _on_summary(self, key: tuple[str, str, str], summary: DataSummary) -> None:
        if key == self._current_key():
            self.summary = summary
            self._show_summary()

    @Slot(object, str)
    def _on_summary_failed(self, key: tuple[str, str, str], message: str) -> None:
        if key == self._current_key():
            self.summary, self.summary_error = None, message
            self._set_summary_text(message, error=True)
            self.summary_changed.emit(None)
            self._update_buttons()

    @Slot()
    def _on_summary_thread_finished(self) -> None:
        if self._sum_thread is None or self.sender() is not self._sum_thread:
            return
        self._sum_thread.wait()
        self._sum_thread = self._sum_worker = None
        if self._sum_again or (self._sum_key != self._current_key() and self.folder_edit.text().strip()):
            self._sum_again = False
            self.refresh_summary()
        elif self._close_when_done and self._thread is None:
            self.close()

    def summary_problem(self, s: DataSummary) -> str:
        """Why this data cannot train with the chosen settings ("" when it can)."""
        task, cond, batch = self.task_combo.currentText(), self.conditioning(), self.batch_spin.value()
        if s.images == 0:
            first = f" ({s.skipped} skipped, e.g. {s.skipped_files[0]})" if s.skipped else ""
            return f"No usable images in this folder{first}; expected {', '.join(IMAGE_EXTENSIONS)} files."
        if cond == "class" and s.classes < 1:
            return "Class training needs the images in sub-folders, one per class; there are none."
        if cond == "text" and s.captions < s.images:
            return (f"{s.images - s.captions} of {s.images} images have no caption (name.txt beside name.png); "
                    "text training needs one for every image.")
        if task == "segment" and s.masks < s.images:
            return f"{s.images - s.masks} of {s.images} images have no mask (name.mask.png beside name.png)."
        if s.images < batch:
            return f"{s.images} usable images, fewer than the batch size {batch}: lower the batch size."
        return ""

    def _show_summary(self, *_: Any) -> None:
        s = self.summary
        if s is None:
            return
        parts = [f"{s.images} image{'s' if s.images != 1 else ''}"]
        classes = ", ".join(s.class_names[:8]) + (", …" if len(s.class_names) > 8 else "")
        parts.append(f"{s.classes} class{'es' if s.classes != 1 else ''}" + (f" ({classes})" if classes else ""))
        parts.append(f"{s.captions} caption{'s' if s.captions != 1 else ''}")
        if self.task_combo.currentText() == "segment" or s.masks:
            parts.append(f"{s.masks} mask{'s' if s.masks != 1 else ''}")
        parts.append(f"{s.skipped} skipped file{'s' if s.skipped != 1 else ''}")
        text = " · ".join(parts)
        problem = self.summary_problem(s)
        self.summary_error = problem
        self._set_summary_text(text + (f"\n{problem}" if problem else ""), error=bool(problem))
        self.summary_label.setToolTip("Skipped:\n" + "\n".join(s.skipped_files[:30]) if s.skipped else "")
        self.summary_changed.emit(s)
        self._update_buttons()

    def _set_summary_text(self, text: str, error: bool) -> None:
        self.summary_label.setText(text)
        self.summary_label.setStyleSheet("color: #c0392b;" if error else "")

    # -- run control -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    def can_start(self) -> bool:
        return (self.state in ("idle", "finished", "stopped", "failed") and self.summary is not None
                and not self.summary_error and not self.settings_problem()
                and bool(self.name_edit.text().strip()) and bool(self.out_edit.text().strip()))

    def can_resume(self) -> bool:
        if self.running or self.state not in ("paused", "stopped", "failed", "idle", "finished"):
            return False
        if self.state == "paused":
            return True
        folder = self.run_folder or (Path(self.out_edit.text().strip()) / RUNS_FOLDER / self.name_edit.text().strip()
                                     if self.name_edit.text().strip() else None)
        return folder is not None and (folder / "checkpoints").is_dir() and self.summary is not None

    def start(self) -> None:
        if not self.can_start():
            return
        self.chart.clear()
        self.sample_label.setPixmap(QPixmap())
        self.sample_label.setText("Sample images appear at each checkpoint")
        self.last_checkpoint = None
        self._launch(resume=False)

    def resume(self) -> None:
        if not self.can_resume():
            return
        self._launch(resume=True)

    def pause(self) -> None:
        if self._worker is not None and self.state in ("starting", "running"):
            self._worker.ask("pause")
            self._set_state("pausing", "Pausing after this step (saving a checkpoint)…")

    def stop(self) -> None:
        if self._worker is not None and self.state in ("starting", "running", "pausing"):
            self._worker.ask("stop")
            self._set_state("stopping", "Stopping after this step…")
        elif self.state == "paused":
            self._set_state("stopped", f"Stopped at step {self.last_step}; the checkpoints are kept.")

    def _launch(self, resume: bool) -> None:
        try:
            config = self.build_config(resume=resume)
        except (TypeError, ValueError) as exc:
            self._set_state(self.state, f"Cannot start: {exc}", error=True)
            return
        parent = Path(self.out_edit.text().strip()).expanduser()
        try:
            parent.mkdir(parents=True, exist_ok=True)
            register_model_folder(parent)
        except OSError as exc:
            self._set_state(self.state, f"Cannot use {parent} for models: {exc}", error=True)
            return
        self._config = config
        self.run_folder = Path(config.out)
        vae_run = config.task == "vae"
        # a VAE is no model of the model list: it stays in its run folder (OUT/vae) for latent runs to use
        self.model_folder = self.run_folder / "vae" if vae_run else parent / self.name_edit.text().strip()
        self.chart.total = config.steps
        if resume and not self.chart.points:
            self._load_metrics(self.run_folder)
        self.progress_bar.setRange(0, config.steps)
        thread = QThread()
        thread.setObjectName("diffedit-training")
        worker = TrainWorker(config, None if vae_run else self.model_folder)
        worker.moveToThread(thread)
        worker.started_run.connect(self._on_started)
        worker.progress.connect(self._on_progress)
        worker.published.connect(self._on_published)
        worker.paused.connect(self._on_paused)
        worker.stopped.connect(self._on_stopped)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self._set_state("starting", "Resuming from the last checkpoint…" if resume else "Preparing the model…")
        self.run_started.emit()
        thread.start()

    def _load_metrics(self, folder: Path) -> None:
        """A resumed run's earlier losses, so the chart shows the whole run."""
        with contextlib.suppress(OSError, ValueError):
            for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
                record = json.loads(line) if line.strip() else {}
                if "loss" in record:
                    self.chart.add(record["step"], float(record["loss"]))
                elif record.get("val_loss") is not None:
                    self.chart.add_val(record["step"], float(record["val_loss"]))

    # -- worker reports (GUI thread) -------------------------------------------------------------------
    @Slot(int)
    def _on_started(self, step: int) -> None:
        if self.state == "starting":
            self._set_state("running", f"Training from step {step}…" if step else "Training…")

    @Slot(object)
    def _on_progress(self, batch: list[Progress]) -> None:
        for p in batch:
            if math.isfinite(p.loss):
                self.chart.add(p.step, p.loss)
            if p.val_loss is not None:
                self.chart.add_val(p.step, p.val_loss)
            if p.sample_grid:
                self._show_grid(p.sample_grid)
            if p.checkpoint:
                self.last_checkpoint = p.checkpoint
            self.last_step = p.step
            self.progressed.emit(p)
        last = next((p for p in reversed(batch) if p.images_per_s > 0), None)
        p = batch[-1]
        self.progress_bar.setRange(0, p.total)
        self.progress_bar.setValue(p.step)
        self.step_label.setText(f"Step {p.step} / {p.total}")
        if last is not None:
            self.loss_label.setText(f"Loss {last.loss:.4f}" + (f" (val {p.val_loss:.4f})" if p.val_loss else ""))
            self.speed_label.setText(f"{last.images_per_s:.1f} images/s")
            self.eta_label.setText(f"Time left {format_duration(last.eta_s)} · elapsed "
                                   f"{format_duration(last.elapsed_s)}")

    def _show_grid(self, path: str) -> None:
        pix = QPixmap(path)
        if pix.isNull():
            return
        self._grid = pix
        self.sample_label.setToolTip(f"Samples from the EMA model: {path}")
        self._fit_grid()

    def _fit_grid(self) -> None:
        pix = getattr(self, "_grid", None)
        if pix is not None:
            size = self.sample_label.size()
            scaled = pix.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                Qt.TransformationMode.FastTransformation if pix.width() * 2 <= size.width()
                                else Qt.TransformationMode.SmoothTransformation)
            self.sample_label.setPixmap(scaled)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_grid()

    @Slot(str)
    def _on_published(self, path: str) -> None:
        self.status_label.setText(f"Checkpoint saved: {path}")
        self.checkpoint_saved.emit(path)
        if self.on_checkpoint is not None:
            try:
                self.on_checkpoint(path)
            except Exception as exc:  # a broken callback must not take the run down
                self.status_label.setText(f"Checkpoint saved: {path} (model list not refreshed: {error_text(exc)})")

    # The outcome is applied once the thread has ended, so `run_ended` means no thread is left.
    @Slot(int)
    def _on_paused(self, step: int) -> None:
        self.last_step = step
        self._outcome = ("paused", f"Paused at step {step}: a checkpoint is saved. Resume continues from it "
                                   "(the number of steps may be changed).", False)

    @Slot(int)
    def _on_stopped(self, step: int) -> None:
        kept = f"the last checkpoint is {self.model_folder}" if self.last_checkpoint else "no checkpoint was written"
        self._outcome = ("stopped", f"Stopped at step {step}; {kept}.", False)

    @Slot(int)
    def _on_finished(self, step: int) -> None:
        if self._config is not None and self._config.task == "vae":
            self._outcome = ("finished", f"Finished {step} steps. The VAE is {self.model_folder}; tick Latent and "
                                         f"choose {self.run_folder} to train on its latents.", False)
            return
        self._outcome = ("finished", f"Finished {step} steps. The model is {self.model_folder}; it is listed in "
                                     "the task panel.", False)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.status_label.setToolTip(details)
        self._outcome = ("failed", f"Training failed: {message}", True)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is None or self.sender() is not self._thread:
            return
        self._thread.wait()  # `finished` is emitted in the thread's last moments: let it end
        self._thread = self._worker = None
        state, message, error = self._outcome or ("stopped", "The run ended.", False)
        self._outcome = None
        self._set_state(state, message, error)
        self.run_ended.emit(state)
        if self._close_when_done and self._sum_thread is None:
            self.close()

    # -- state -----------------------------------------------------------------------------------------
    def _set_state(self, state: str, message: str = "", error: bool = False) -> None:
        self.state = state
        if message:
            self.status_label.setText(message)
            self.status_label.setStyleSheet("color: #c0392b;" if error else "")
        self._update_buttons()

    def _update_buttons(self, *_: Any) -> None:
        if not hasattr(self, "close_button"):
            return
        editable = self.state in ("idle", "finished", "stopped", "failed") and not self.running
        for w in self._settings_widgets:
            w.setEnabled(editable)
        task = self.task_combo.currentText()
        self.cond_combo.setEnabled(editable and task == "generate")
        self.latent_check.setEnabled(editable and task != "vae")
        self.loss_combo.setEnabled(editable and task != "vae")
        for w in (self.vae_edit, self.vae_browse):
            w.setEnabled(editable and self.latent())
        self.text_edit.setEnabled(editable and self.text_combo.currentData() == "folder")
        self._form.setRowVisible(self.text_row, self.conditioning() == "text")
        problem = self.settings_problem()
        self.settings_label.setText(problem)
        self.settings_label.setVisible(bool(problem))
        self.steps_spin.setEnabled(editable or self.state == "paused")
        self.time_limit_spin.setEnabled(editable or self.state == "paused")
        self.start_button.setEnabled(self.can_start() and not self.running)
        self.pause_button.setEnabled(self.state in ("starting", "running"))
        self.stop_button.setEnabled(self.state in ("starting", "running", "pausing", "paused"))
        self.resume_button.setEnabled(self.can_resume())
        self.close_button.setText("Stop and close" if self.running else "Close")

    # -- closing ---------------------------------------------------------------------------------------
    def threads_alive(self) -> int:
        return sum(1 for t in (self._thread, self._sum_thread) if t is not None and t.isRunning())

    def shutdown(self, timeout_ms: int = 60000) -> bool:
        """Stop the run (after its current step) and wait for the threads; True when none is left.

        For the main window's closeEvent: blocks the GUI for at most one training step."""
        if self._worker is not None:
            self._worker.ask("stop")
        ok = True
        for thread in (self._thread, self._sum_thread):
            if thread is not None:
                ok = thread.wait(timeout_ms) and ok
        self._thread = self._worker = None
        self._sum_thread = self._sum_worker = None
        return ok

    def closeEvent(self, event: QCloseEvent) -> None:
        """Never leaves a thread running: a run is asked to stop and the dialog closes once it has."""
        if self._thread is not None or self._sum_thread is not None:
            event.ignore()
            self._close_when_done = True
            if self._worker is not None and self.state in ("starting", "running", "pausing"):
                self.stop()
            self.status_label.setText("Stopping after this step; the dialog closes then…")
            return
        self._close_when_done = False
        super().closeEvent(event)

    def reject(self) -> None:  # Escape, or QDialog's own closeEvent: never hide while a thread runs
        self.done(QDialog.DialogCode.Rejected)

    def done(self, result: int) -> None:
        if self._thread is not None or self._sum_thread is not None:
            self.close()  # ignored while busy: asks the run to stop, closes once it has
            return
        super().done(result)


def _row(*widgets: QWidget, stretch: bool = False) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
    if stretch:
        layout.addStretch(1)
    return row


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    spin.setToolTip(tip)
    spin.setGroupSeparatorShown(True)
    spin.setMinimumWidth(110)
    return spin


class LearningRateSpin(QDoubleSpinBox):
    """A learning rate in LR_RANGE, shown as 2e-04; the arrows step along 1, 2, 5 x 10^k."""

    def __init__(self) -> None:
        super().__init__()
        self.setDecimals(12)  # the value itself; the text is textFromValue's
        self.setRange(*LR_RANGE)
        self.setMinimumWidth(110)

    def textFromValue(self, value: float) -> str:
        return f"{value:.3g}" if value >= 1e-4 else f"{value:.2e}".replace(".00e", "e")

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        try:
            value = float(text.strip())
        except ValueError:
            ok = all(ch in "0123456789.eE+-" for ch in text.strip())
            return QValidator.State.Intermediate if ok else QValidator.State.Invalid
        lo, hi = LR_RANGE
        return QValidator.State.Acceptable if lo <= value <= hi else QValidator.State.Intermediate

    def fixup(self, text: str) -> str:
        return self.textFromValue(self.value())

    def stepBy(self, steps: int) -> None:
        ladder = [m * 10.0**k for k in range(-6, -1) for m in (1, 2, 5)] + [LR_RANGE[1]]
        value = self.value()
        if steps > 0:
            above = [v for v in ladder if v > value * (1 + 1e-9)]
            target = above[min(steps, len(above)) - 1] if above else ladder[-1]
        else:
            below = [v for v in ladder if v < value * (1 - 1e-9)]
            target = below[-min(-steps, len(below))] if below else ladder[0]
        self.setValue(target)


def open_training_dialog(parent: QWidget, on_checkpoint: Callable[[str], None] | None = None) -> TrainingDialog:
    """Show the (non-modal) training dialog; `on_checkpoint(folder)` runs (GUI thread) for every
    checkpoint published into a model folder, e.g. to refresh the task panel's model list."""
    dialog = TrainingDialog(parent, on_checkpoint)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
