"""The Tasks dock: pick a task and a model, fill a form built from the task's Params, run it in the
background with progress, time left and a live preview, and get the result as one undoable layer.

Requests are built here from the document (composite, inpainting mask) when Run is pressed, so a
queued run uses the image as it was then; the document is touched only when a result arrives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from diffedit.diffusion.checkpoints import CheckpointError, read_manifest
from diffedit.document.document import Document
from diffedit.document.records import GenerationRecord
from diffedit.models_registry import find_models
from diffedit.plugins import PluginHost, default_host
from diffedit.qt.bindings import Connections
from diffedit.qt.param_form import ParamForm
from diffedit.qt.record_view import RecordView
from diffedit.qt.task_results import EtaClock, apply_result, preview_overlay
from diffedit.qt.workers import RunJob, RunQueue
from diffedit.settings import Settings
from diffedit.tasks.base import TaskRequest, TaskResult, TaskSpec
from diffedit.tasks.params import ParamError, make_params, param_specs
from diffedit.tasks.runner import TaskInputError, validate_inputs

ERROR_STYLE = "color: #c0392b;"


@dataclass
class RunInfo:
    """What the panel remembers about a submitted run, to place its previews and its result."""

    doc: Document
    spec: TaskSpec
    mask: np.ndarray | None
    margin: int
    started: float = 0.0


class TaskPanel(QDockWidget):
    """Lists the tasks of a plugin host and runs them on the current document through a RunQueue."""

    message = Signal(str)  # a line for the window's status bar
    error = Signal(str, str, str)  # (title, message, details) of a failed run, for a message box
    preview_changed = Signal(object, object)  # (QImage, Rect) to draw over the canvas, or (None, None)
    run_done = Signal(str)  # "finished" | "failed" | "cancelled", after the panel has handled it
    result_added = Signal(object, object)  # (TaskSpec, [layers]) once a result is in the document

    def __init__(self, host: PluginHost | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Tasks", parent)
        self.setObjectName("task-panel")
        self.host = host or default_host()
        self.registry = self.host.registry
        self.doc: Document | None = None
        self.spec: TaskSpec | None = None
        self.form: ParamForm | None = None
        self.queue = RunQueue(self)
        self.last_error: str | None = None
        self.previews_shown = 0
        self._conns = Connections()
        self._browsed: dict[str, list[str]] = {}  # folders picked with Browse…: path -> tasks it serves
        self._chosen: dict[str, str] = {}  # task name -> the model last chosen for it
        self._found_tasks: dict[str, list[str]] = {}  # model path -> tasks it serves, from the last listing
        self._eta = EtaClock()
        self._build()
        self.queue.started.connect(self._on_started)
        self.queue.progress.connect(self._on_progress)
        self.queue.preview.connect(self._on_preview)
        self.queue.finished.connect(self._on_finished)
        self.queue.failed.connect(self._on_failed)
        self.queue.cancelled.connect(self._on_cancelled)
        self.queue.idle.connect(self._update_buttons)
        for name, spec in self.registry.tasks.items():
            self.task_combo.addItem(spec.label, name)
        if self.task_combo.count():
            self.select_task(self.task_combo.itemData(0))
        else:
            self._status("No task plugins are loaded (see Plugins in the Help menu or 'diffedit plugins').", True)
        self._update_buttons()

    # -- building ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.task_combo = QComboBox()
        self.task_combo.activated.connect(lambda i: self.select_task(self.task_combo.itemData(i)))
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setEnabled(False)
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(10)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setToolTip("Pick a checkpoint folder (one with a diffedit.json manifest)")
        self.browse_button.clicked.connect(self.browse_model)
        self.model_row = QWidget()
        row = QHBoxLayout(self.model_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.browse_button)
        head = QFormLayout()
        head.addRow("Task", self.task_combo)
        head.addRow("", self.description)
        head.addRow("Model", self.model_row)
        self.form_area = QScrollArea()
        self.form_area.setWidgetResizable(True)
        self.form_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.form_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # fields shrink instead
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running task and drop the queued ones; the image is not changed")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Idle")
        self.eta_label = QLabel()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.record_view = RecordView()
        self.record_view.run_again.connect(self.run_again)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addLayout(head)
        layout.addWidget(self.form_area, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.eta_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.record_view)
        body.setMinimumWidth(320)
        self.setWidget(body)

    # -- the document --------------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        """Follow another document; runs made for the old one are cancelled (their results have no home)."""
        if doc is not self.doc and self.queue.busy:
            self.queue.cancel_all()
        self._conns.clear()
        self.doc = doc
        if doc is not None:
            self._conns.connect(doc.events.active_changed, self.record_view.show_layer)
        self.record_view.show_layer(doc.active if doc is not None else None)
        self.preview_changed.emit(None, None)

    def shutdown(self) -> bool:
        """Cancel every run and wait for the worker thread (the window is closing)."""
        self.preview_changed.emit(None, None)
        return self.queue.shutdown()

    # -- task and model ------------------------------------------------------------------------------
    def select_task(self, name: str) -> None:
        spec = self.registry.tasks.get(name)
        if spec is None:
            raise KeyError(f"no task '{name}' is loaded; loaded tasks: {', '.join(self.registry.tasks)}")
        self.task_combo.setCurrentIndex(self.task_combo.findData(name))
        self.spec = spec
        self.description.setText(spec.description)
        self.form = ParamForm(param_specs(spec.params), self.registry.samplers)
        self.form_area.setWidget(self.form)
        self.model_row.setVisible(spec.needs_model)
        self._refresh_models()

    def _refresh_models(self) -> None:
        spec = self.spec
        assert spec is not None
        previous = self._chosen.get(spec.name)
        found = [m for m in find_models() if any(m.serves(t) for t in spec.model_tasks)]
        self._found_tasks = {str(m.path): m.tasks or [m.task] for m in found}
        entries = [(m.name, str(m.path), f"{m.path}\n{m.description}".strip(), m.default) for m in found]
        known = {path for _, path, _, _ in entries}
        entries += [(Path(p).name, p, p, False) for p, tasks in self._browsed.items()
                    if set(tasks) & set(spec.model_tasks) and p not in known]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for name, path, tip, _ in entries:
            self.model_combo.addItem(name, path)
            self.model_combo.setItemData(self.model_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if not entries:
            self.model_combo.addItem("No model found: use Browse…", None)
        paths = [path for _, path, _, _ in entries]
        # the last choice for this task, else a default made for this very task, else any default, else one
        # made for this task (a default digit generator must not win the inpaint task over the repair model)
        main = spec.model_tasks[0] if spec.model_tasks else ""
        own = [p for p in paths if main in self._model_tasks(p)]  # made for this very task
        defaults = [path for _, path, _, default in entries if default]
        preferred = [p for p in defaults if p in own] + defaults + own
        choice = previous if previous in paths else (preferred[0] if preferred else None)
        self.model_combo.setCurrentIndex(paths.index(choice) if choice else 0)
        self.model_combo.blockSignals(False)
        self._model_changed()

    def _model_tasks(self, path: str) -> list[str]:
        return self._browsed.get(path) or self._found_tasks.get(path, [])

    def model_path(self) -> str | None:
        data = self.model_combo.currentData()
        return str(data) if data else None

    def _model_changed(self, *_: Any) -> None:
        """Offer the chosen model's classes (read from its JSON manifest only, no torch)."""
        if self.form is None or self.spec is None:
            return
        path, names = self.model_path(), []
        if path is not None:
            self._chosen[self.spec.name] = path
            try:
                names = list(read_manifest(path).class_names)
            except CheckpointError as exc:
                self._status(f"This model's manifest cannot be used: {exc}", True)
        self.form.set_class_names(names)

    def browse_model(self) -> None:
        start = self.model_path() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose a checkpoint folder", start)
        if folder:
            self.choose_model_folder(folder)

    def choose_model_folder(self, folder: str | Path) -> bool:
        """Use a checkpoint folder that is not in the model folders; a wrong one is explained, not used."""
        spec = self.spec
        assert spec is not None
        try:
            manifest = read_manifest(folder)
        except CheckpointError as exc:
            self._status(f"Not a usable checkpoint folder: {exc}", True)
            return False
        if not set(manifest.served_tasks) & set(spec.model_tasks):
            self._status(f"{Path(folder).name} is a '{manifest.task}' model; {spec.label} needs one of: "
                         f"{', '.join(spec.model_tasks)}.", True)
            return False
        path = str(Path(folder))
        self._browsed[path] = manifest.served_tasks
        self._refresh_models()
        self.model_combo.setCurrentIndex(self.model_combo.findData(path))
        return True

    def select_model(self, path: str) -> bool:
        index = self.model_combo.findData(str(Path(path)))
        if index >= 0:
            self.model_combo.setCurrentIndex(index)
            return True
        return self.choose_model_folder(path)

    # -- running -------------------------------------------------------------------------------------
    def build_request(self) -> tuple[TaskRequest, RunInfo]:
        """The request for the current form and document; TaskInputError/ParamError say what is missing."""
        spec, doc, form = self.spec, self.doc, self.form
        if spec is None or form is None:
            raise TaskInputError("choose a task first")
        if doc is None:
            raise TaskInputError("open or create an image first")
        model = self.model_path() if spec.needs_model else None
        if spec.needs_model and model is None:
            raise TaskInputError(f"choose a model for {spec.label}: none is selected (Browse… picks a checkpoint "
                                 f"folder; model folders are set in the settings or DIFFEDIT_MODEL_PATH)")
        params = make_params(spec.params, form.values())
        mask = None
        if "mask" in spec.inputs:
            layer = doc.inpaint_mask
            mask = layer.surface.to_array()[..., 0] if layer is not None else None
            if mask is None or not (mask >= 128).any():
                raise TaskInputError("no mask is painted: paint the area to change with the mask brush (M) first")
        image = doc.composite() if "image" in spec.inputs else None
        settings = Settings.load()
        request = TaskRequest(task=spec.name, params=params, model=model, image=image, mask=mask,
                              device=settings.device, precision=settings.precision)
        validate_inputs(spec, request)
        return request, RunInfo(doc, spec, mask, int(getattr(params, "context", 0) or 0))

    def run(self) -> RunJob | None:
        """Queue a run of the current form; a missing input shows in the status line and returns None."""
        try:
            request, info = self.build_request()
        except (TaskInputError, ParamError) as exc:
            self._status(f"Cannot run: {exc}", True)
            self.message.emit(f"Cannot run: {exc}")
            return None
        job = self.queue.submit(request, self.registry, label=info.spec.label, data=info)
        if job.state == "queued":
            self._status(f"{info.spec.label} queued ({len(self.queue.pending)} waiting).")
        self._update_buttons()
        return job

    def cancel(self) -> None:
        if self.queue.busy:
            self.queue.cancel_all()
            self.preview_changed.emit(None, None)

    def run_again(self, record: GenerationRecord) -> RunJob | None:
        """Fill the form from a generation record (task, model, sampler, steps, seed, params) and run it."""
        if record.task not in self.registry.tasks:
            self._status(f"Cannot run again: task '{record.task}' is not loaded.", True)
            return None
        self.select_task(record.task)
        if record.model and not self.select_model(record.model):
            return None
        assert self.form is not None
        self.form.set_values({**record.params, "sampler": record.sampler, "steps": record.steps,
                              "seed": record.seed})
        return self.run()

    # -- run events (all on the GUI thread) ----------------------------------------------------------
    def _on_started(self, job: RunJob) -> None:
        job.data.started = time.monotonic()
        self._eta = EtaClock()
        self.progress.setRange(0, 0)  # busy until the first step: loading the model
        self.progress.setFormat("Loading…")
        self.eta_label.setText("Loading the model…")  # a busy bar shows no text
        waiting = f" ({len(self.queue.pending)} more queued)" if self.queue.pending else ""
        self._status(f"Running {job.label}…{waiting}")
        self._update_buttons()

    def _on_progress(self, job: RunJob, step: int, total: int, evaluations: int, elapsed: float) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(step)
        self.progress.setFormat(f"Step {step}/{total}")
        self.eta_label.setText(self._eta.text(step, total, elapsed))

    def _on_preview(self, job: RunJob, pixels: np.ndarray) -> None:
        info: RunInfo = job.data
        if info.doc is not self.doc:
            return
        image, rect = preview_overlay(pixels, info.doc, info.mask, info.margin)
        self.previews_shown += 1
        self.preview_changed.emit(image, rect)

    def _on_finished(self, job: RunJob, result: TaskResult) -> None:
        info: RunInfo = job.data
        self.preview_changed.emit(None, None)
        self._idle_progress("Done")
        seconds = time.monotonic() - info.started
        if info.doc is not self.doc:
            self._status(f"{job.label} finished, but its document was closed: the result was dropped.", True)
        else:
            try:
                layers, notes = apply_result(info.doc, info.spec, result)
            except (ValueError, RuntimeError) as exc:  # e.g. a layer locked meanwhile: report, never crash
                self._fail(job.label, f"the result could not be added: {exc}", "")
                return
            seed = f", seed {result.record.seed}" if result.record.seed is not None else ""
            names = ", ".join(f"'{la.name}'" for la in layers) or "nothing"
            text = " ".join([f"{job.label} done in {seconds:.1f} s{seed}: added {names}.", *notes])
            self._status(text)
            self.message.emit(text)
            self.result_added.emit(info.spec, layers)
        self.run_done.emit("finished")
        self._update_buttons()

    def _on_failed(self, job: RunJob, message: str, details: str) -> None:
        self.preview_changed.emit(None, None)
        self._idle_progress("Failed")
        self._fail(job.label, message, details)
        self.run_done.emit("failed")
        self._update_buttons()

    def _on_cancelled(self, job: RunJob) -> None:
        if job is self.queue.current or self.queue.current is None:
            self.preview_changed.emit(None, None)
            self._idle_progress("Cancelled")
        self._status(f"{job.label} cancelled; the image was not changed.")
        self.run_done.emit("cancelled")
        self._update_buttons()

    # -- helpers -------------------------------------------------------------------------------------
    def _fail(self, label: str, message: str, details: str) -> None:
        self._status(f"{label} failed: {message}", True)
        self.message.emit(f"{label} failed: {message}")
        self.error.emit(f"{label} failed", message, details)

    def _status(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(ERROR_STYLE if error else "")
        if error:
            self.last_error = text

    def _idle_progress(self, text: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if text == "Done" else 0)
        self.progress.setFormat(text)
        self.eta_label.setText("")

    def _update_buttons(self) -> None:
        busy = self.queue.busy
        self.cancel_button.setEnabled(busy)
        self.run_button.setEnabled(self.spec is not None)
        self.run_button.setText("Add to queue" if busy else "Run")
