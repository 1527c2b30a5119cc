"""Compare checkpoints (FID): sample checkpoints, measure FID and KID against a reference, in the background.

The reference is an image folder (its statistics cached by `StatsCache`) or a statistics .npz. The
checkpoints are folders, or a training run's `checkpoints/step-N` folders listed by step. Each
checkpoint's samples are drawn with `evaluate.sample_checkpoint` and scored with `evaluate.compare`
(the functions `compare_checkpoints` and `diffedit fid` use, so the numbers are the same); their
features and a few sample images are cached per checkpoint and settings, so a rerun (or another
reference) does not sample again. Results fill a table, a chart against step and a sample grid,
and export to CSV (written atomically).

Wiring: `open_fid_panel(main_window)` shows (and reuses) a non-modal window owned by `main_window`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from diffedit.qt.metric_chart import ChartPoint, MetricChart
from diffedit.qt.workers import HEAVY_IMPORT_LOCK, _orphans, error_text
from diffedit.tasks.cancel import Cancelled, CancelToken

ERROR_STYLE = "color: #c0392b;"
GRID_IMAGES = 16  # sample images kept (and cached) per checkpoint for the grid
COLUMNS = ("Checkpoint", "Step", "FID", "KID", "KID ±", "Samples", "Time (s)")
CSV_FIELDS = ("checkpoint", "step", "fid", "kid", "kid_std", "n_images", "n_ref", "seconds", "cached",
              "reference", "sampler", "steps", "seed")
_STEP = re.compile(r"step-(\d+)$")

ExtractorFactory = Callable[[], Any]  # -> a FeatureExtractor (or a stand-in with extract/extract_files)


# -- checkpoints and runs (Qt-free helpers) ----------------------------------------------------------
def is_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and (folder / "diffedit.json").is_file()


def run_checkpoints(run: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of a training run's checkpoints, by step. `run` is the run folder or its checkpoints/.

    Unlike `training.state.completed`, a checkpoint without its resume state still counts: FID needs
    only the weights.
    """
    root = Path(run)
    if (root / "checkpoints").is_dir():
        root = root / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        match = _STEP.match(folder.name)
        if match and is_checkpoint(folder):
            found.append((int(match.group(1)), folder))
    return sorted(found)


def step_of(folder: str | Path) -> int | None:
    """The step in a `step-N` folder name, else the manifest's training steps, else None."""
    from diffedit.metrics.evaluate import checkpoint_step

    match = _STEP.match(Path(folder).name)
    return int(match.group(1)) if match else checkpoint_step(str(folder))


def _fingerprint(path: Path) -> list[tuple[str, int, int]]:
    """Every file under `path` (or the file itself) with its size and modification time."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out = []
    for p in files:
        st = p.stat()
        out.append((str(p.relative_to(path)) if p != path else p.name, st.st_size, st.st_mtime_ns))
    return out


def sample_key(folder: Path, settings: Any, device: str, extractor_settings: dict[str, object]) -> str:
    blob = json.dumps({"checkpoint": str(folder.resolve()), "files": _fingerprint(folder),
                       "settings": asdict(settings), "device": device, "extractor": extractor_settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class SampleCache:
    """`<root>/<checkpoint name>-<key>.npz`: a checkpoint's sample features (+ logits, a few images)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0

    def path(self, folder: Path, key: str) -> Path:
        return self.root / f"{folder.resolve().name}-{key}.npz"

    def load(self, folder: Path, key: str) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]] | None:
        path = self.path(folder, key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as f:
                logits = f.get("logits")
                images = list(f["images"]) if "images" in f else []
                result = f["pool"], logits, images
        except (OSError, ValueError, KeyError):  # a damaged file is recomputed and replaced
            self.misses += 1
            return None
        self.hits += 1
        return result

    def save(self, folder: Path, key: str, pool: np.ndarray, logits: np.ndarray | None,
             images: list[np.ndarray]) -> None:
        from diffedit.document.atomic import atomic_write

        arrays: dict[str, np.ndarray] = {"pool": np.asarray(pool, np.float64)}
        if logits is not None:
            arrays["logits"] = np.asarray(logits, np.float64)
        if images and len({im.shape for im in images}) == 1:
            arrays["images"] = np.stack(images).astype(np.uint8)
        atomic_write(self.path(folder, key), lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def image_grid(images: list[np.ndarray], gap: int = 2) -> np.ndarray | None:
    """A near-square grid of equal-sized RGB images on a grey background, or None."""
    if not images:
        return None
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    grid = np.full((rows * h + (rows + 1) * gap, cols * w + (cols + 1) * gap, 3), 128, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        grid[y:y + im.shape[0], x:x + im.shape[1]] = im[..., :3]
    return grid


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})
    return out.getvalue()


@dataclass
class FidJob:
    reference: str
    checkpoints: list[tuple[str, int | None]]
    settings: Any  # evaluate.SampleSettings
    registry: Any
    extractor_factory: ExtractorFactory
    cache_root: Path
    device: str = "cpu"


# -- the worker --------------------------------------------------------------------------------------
class FidWorker(QObject):
    """Runs one FidJob in a worker thread; signals are emitted from that thread."""

    progress = Signal(str, int, int)  # what, done, total (samples over all checkpoints, or reference images)
    row = Signal(object)  # one result dict per checkpoint
    failed = Signal(str, str)
    cancelled = Signal()
    finished = Signal()
    done = Signal()  # after any of the three above

    def __init__(self, job: FidJob, token: CancelToken) -> None:
        super().__init__()
        self.job = job
        self.token = token
        self.sample_cache = SampleCache(job.cache_root / "fid-samples")
        self.stats_cache: Any = None

    @Slot()
    def run(self) -> None:
        try:
            self._run()
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # the GUI must never go down with a run
            self.failed.emit(error_text(exc), traceback.format_exc())
        else:
            if self.token.cancelled:
                self.cancelled.emit()
            else:
                self.finished.emit()
        finally:
            self.done.emit()

    def _run(self) -> None:
        from diffedit.metrics import evaluate
        from diffedit.metrics.stats import Statistics, StatsCache

        job, token = self.job, self.token
        self.progress.emit("Loading the feature extractor…", 0, 0)
        with HEAVY_IMPORT_LOCK:
            extractor = job.extractor_factory()
            import pytorch_fid.fid_score  # noqa: F401 - FID's first import (torch, scipy) is not a checkpoint's time
        token.raise_if_cancelled()
        self.stats_cache = StatsCache(job.cache_root / "fid-stats")

        def ref_progress(done: int, total: int) -> None:
            token.raise_if_cancelled()
            self.progress.emit("Reference features", done, total)

        ref_stats = evaluate.reference_stats(job.reference, extractor, self.stats_cache, ref_progress)
        n = job.settings.samples
        total = n * len(job.checkpoints)
        ext_settings = extractor.cache_settings()
        for index, (folder_s, step) in enumerate(job.checkpoints):
            token.raise_if_cancelled()
            folder = Path(folder_s)
            start = time.monotonic()
            key = sample_key(folder, job.settings, job.device, ext_settings)
            cached = self.sample_cache.load(folder, key)
            label = f"{folder.name} ({index + 1}/{len(job.checkpoints)})"
            if cached is not None:
                pool, logits, images = cached
            else:
                def sample_progress(done: int, _total: int, index: int = index, label: str = label) -> None:
                    token.raise_if_cancelled()
                    self.progress.emit(f"Sampling {label}", index * n + done, total)

                self.progress.emit(f"Sampling {label}", index * n, total)
                samples = evaluate.sample_checkpoint(str(folder), job.settings, job.registry, job.device,
                                                     sample_progress, token)
                token.raise_if_cancelled()
                self.progress.emit(f"Features {label}", (index + 1) * n, total)
                feats = extractor.extract(samples, len(samples), lambda d, t: token.raise_if_cancelled())
                pool, logits = feats.pool, feats.logits
                images = [np.asarray(im, np.uint8) for im in samples[:GRID_IMAGES]]
                self.sample_cache.save(folder, key, pool, logits, images)
            token.raise_if_cancelled()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", evaluate.SmallSetWarning)  # kept as notes in the result
                result = evaluate.compare(ref_stats, Statistics.from_features(pool, logits))
            result.update(checkpoint=str(folder), step=step, seconds=time.monotonic() - start,
                          cached=cached is not None, images=images, reference=job.reference,
                          sampler=job.settings.sampler, steps=job.settings.steps, seed=job.settings.seed)
            self.progress.emit(f"Measured {label}", (index + 1) * n, total)
            self.row.emit(result)


# -- the panel ---------------------------------------------------------------------------------------
def _default_extractor() -> Any:
    from diffedit.metrics.features import FeatureExtractor
    from diffedit.metrics.weights import resolve_weights

    return FeatureExtractor(resolve_weights())


def _num(v: Any, digits: int = 4) -> str:
    """Significant digits: FIDs run from ~0.01 (stand-ins) to hundreds, KIDs from 1e-5 to ~0.1."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}g}"


class _NumItem(QTableWidgetItem):
    """Sorts by its number (UserRole), not its text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        a, b = self.data(Qt.ItemDataRole.UserRole), other.data(Qt.ItemDataRole.UserRole)
        a = -math.inf if a is None else a
        b = -math.inf if b is None else b
        return bool(a < b)


class FidPanel(QWidget):
    """Reference + checkpoints + sampling settings -> a background run -> table, chart, grid, CSV."""

    message = Signal(str)  # a status line
    row_added = Signal(object)  # the result dict, after it is in the table
    run_started = Signal()
    run_done = Signal(str)  # "finished" | "failed" | "cancelled", once the thread has stopped

    def __init__(self, host: Any = None, parent: QWidget | None = None,
                 extractor_factory: ExtractorFactory | None = None, cache_root: str | Path | None = None,
                 device: str = "cpu") -> None:
        super().__init__(parent)
        self.setObjectName("fid-panel")
        self._host = host
        self.extractor_factory = extractor_factory or _default_extractor
        self._cache_root = Path(cache_root) if cache_root is not None else None
        self.device = device
        self.results: list[dict[str, Any]] = []
        self.checkpoints: list[tuple[str, int | None]] = []
        self.state = "idle"  # idle | running | finished | failed | cancelled
        self.last_error: str | None = None
        self.notes: list[str] = []
        self.sample_cache_hits = 0
        self._thread: QThread | None = None
        self._worker: FidWorker | None = None
        self._token: CancelToken | None = None
        self._started = 0.0
        self._build()
        self._update_buttons()

    @property
    def registry(self) -> Any:
        if self._host is None:
            from diffedit.plugins import default_host

            self._host = default_host()
        return self._host.registry

    def cache_root(self) -> Path:
        if self._cache_root is not None:
            return self._cache_root
        from diffedit.metrics.weights import cache_dir

        return cache_dir()

    # -- building ----------------------------------------------------------------------------------
    def _build(self) -> None:
        # reference
        self.reference_edit = QLineEdit()
        self.reference_edit.setPlaceholderText("image folder or statistics .npz")
        self.reference_edit.textChanged.connect(self._update_buttons)
        self.ref_folder_button = QPushButton("Folder…")
        self.ref_folder_button.clicked.connect(self.browse_reference_folder)
        self.ref_file_button = QPushButton("Statistics…")
        self.ref_file_button.setToolTip("A statistics .npz (ours or pytorch-fid's; KID needs ours)")
        self.ref_file_button.clicked.connect(self.browse_reference_file)
        ref_row = QHBoxLayout()
        ref_row.addWidget(self.reference_edit, 1)
        ref_row.addWidget(self.ref_folder_button)
        ref_row.addWidget(self.ref_file_button)
        ref_box = QGroupBox("Reference")
        ref_box.setLayout(ref_row)
        # checkpoints
        self.checkpoint_list = QListWidget()
        self.checkpoint_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.checkpoint_list.setMinimumHeight(90)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip("A checkpoint folder (one with a diffedit.json manifest)")
        self.add_folder_button.clicked.connect(self.browse_checkpoint)
        self.add_run_button = QPushButton("Add training run…")
        self.add_run_button.setToolTip("A training run folder: its checkpoints/step-N folders, by step")
        self.add_run_button.clicked.connect(self.browse_run)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear_checkpoints)
        ck_buttons = QHBoxLayout()
        for b in (self.add_folder_button, self.add_run_button, self.remove_button, self.clear_button):
            ck_buttons.addWidget(b)
        ck_layout = QVBoxLayout()
        ck_layout.addWidget(self.checkpoint_list, 1)
        ck_layout.addLayout(ck_buttons)
        ck_box = QGroupBox("Checkpoints")
        ck_box.setLayout(ck_layout)
        # settings
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(2, 100_000)
        self.samples_spin.setValue(256)
        self.samples_spin.setToolTip("Images sampled per checkpoint (FID is biased below 2048: compare KID)")
        self.sampler_combo = QComboBox()
        self.sampler_combo.addItem("(model default)", "")
        self._samplers_filled = False
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setValue(25)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Image i of every checkpoint uses seed + i")
        form = QFormLayout()
        form.addRow("Samples per checkpoint", self.samples_spin)
        form.addRow("Sampler", self.sampler_combo)
        form.addRow("Steps", self.steps_spin)
        form.addRow("Seed", self.seed_spin)
        set_box = QGroupBox("Sampling")
        set_box.setLayout(form)
        # run controls
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop within the current sample; finished checkpoints stay in the table")
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self.browse_export)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("Idle")
        self.progress.setTextVisible(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(ref_box)
        lv.addWidget(ck_box, 1)
        lv.addWidget(set_box)
        lv.addLayout(buttons)
        lv.addWidget(self.progress)
        lv.addWidget(self.status)
        # results
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # run order until a header is clicked
        self.table.setSortingEnabled(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.chart = MetricChart()
        self.chart.point_clicked.connect(self.select_result)
        self.grid_label = QLabel("Select a checkpoint to see its samples")
        self.grid_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid_label.setMinimumSize(220, 220)
        self.grid_label.setWordWrap(True)
        self.grid_caption = QLabel()
        self.grid_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        grid_box = QGroupBox("Samples")
        gv = QVBoxLayout(grid_box)
        gv.addWidget(self.grid_label, 1)
        gv.addWidget(self.grid_caption)
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(self.chart)
        lower.addWidget(grid_box)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.table)
        right.addWidget(lower)
        right.setStretchFactor(0, 2)
        right.setStretchFactor(1, 3)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setStretchFactor(0, 0)
        main.setStretchFactor(1, 1)
        main.setSizes([360, 740])
        layout = QVBoxLayout(self)
        layout.addWidget(main)
        self._grid_image: np.ndarray | None = None

    def showEvent(self, event: Any) -> None:
        self.fill_samplers()
        super().showEvent(event)

    def fill_samplers(self) -> None:
        if self._samplers_filled:
            return
        self._samplers_filled = True
        try:
            names = list(self.registry.samplers)
        except Exception:  # no plugins: the model's default sampler still works
            names = []
        for name in names:
            self.sampler_combo.addItem(name, name)

    # -- inputs ------------------------------------------------------------------------------------
    def set_reference(self, path: str | Path) -> None:
        self.reference_edit.setText(str(path))

    def add_checkpoint(self, folder: str | Path, step: int | None = None) -> bool:
        """Add a checkpoint folder (a training run folder adds its checkpoints); False if not one."""
        path = Path(folder)
        if not is_checkpoint(path):
            found = run_checkpoints(path)
            if found:
                self.add_training_run(path)
                return True
            self._status(f"{path} is not a checkpoint folder (no diffedit.json) nor a training run", True)
            return False
        key = str(path)
        if any(p == key for p, _ in self.checkpoints):
            return True
        self.checkpoints.append((key, step if step is not None else step_of(path)))
        s = self.checkpoints[-1][1]
        item = QListWidgetItem(f"{path.name}" + (f"   (step {s})" if s is not None else ""))
        item.setToolTip(key)
        item.setData(Qt.ItemDataRole.UserRole, key)
        self.checkpoint_list.addItem(item)
        self._update_buttons()
        return True

    def add_training_run(self, run: str | Path) -> list[tuple[int, Path]]:
        found = run_checkpoints(run)
        if not found:
            self._status(f"{run}: no checkpoints/step-N folders found", True)
        for step, folder in found:
            self.add_checkpoint(folder, step)
        if found:
            self._status(f"Added {len(found)} checkpoints of {Path(run).name}, steps "
                         f"{found[0][0]}–{found[-1][0]}")
        return found

    def remove_selected(self) -> None:
        for item in self.checkpoint_list.selectedItems():
            key = item.data(Qt.ItemDataRole.UserRole)
            self.checkpoints = [c for c in self.checkpoints if c[0] != key]
            self.checkpoint_list.takeItem(self.checkpoint_list.row(item))
        self._update_buttons()

    def clear_checkpoints(self) -> None:
        self.checkpoints.clear()
        self.checkpoint_list.clear()
        self._update_buttons()

    def browse_reference_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Reference image folder")
        if path:
            self.set_reference(path)

    def browse_reference_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference statistics", "", "Statistics (*.npz)")
        if path:
            self.set_reference(path)

    def browse_checkpoint(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Checkpoint folder")
        if path:
            self.add_checkpoint(path)

    def browse_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Training run folder")
        if path:
            self.add_training_run(path)

    def browse_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export results", "fid-results.csv", "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except OSError as exc:
                self._status(f"Could not export: {exc}", True)

    def sample_settings(self) -> Any:
        from diffedit.metrics.evaluate import SampleSettings

        return SampleSettings(self.samples_spin.value(), self.sampler_combo.currentData() or "",
                              self.steps_spin.value(), self.seed_spin.value())

    # -- running -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> bool:
        """Start measuring every listed checkpoint; False (with a message) if the inputs are incomplete."""
        if self.running:
            return False
        ref = self.reference_edit.text().strip()
        if not ref or not Path(ref).exists():
            self._status("Choose a reference: an image folder or a statistics .npz file", True)
            return False
        if not self.checkpoints:
            self._status("Add one or more checkpoints, or a training run", True)
            return False
        self.fill_samplers()
        job = FidJob(ref, list(self.checkpoints), self.sample_settings(), self.registry, self.extractor_factory,
                     self.cache_root(), self.device)
        self.clear_results()
        self.state, self.last_error, self.notes = "running", None, []
        self._token = CancelToken()
        thread = QThread()
        thread.setObjectName("diffedit-fid")
        worker = FidWorker(job, self._token)
        worker.moveToThread(thread)
        worker.progress.connect(self._on_progress)
        worker.row.connect(self._on_row)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_finished)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self._started = time.monotonic()
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting…")
        self._status(f"Measuring {len(job.checkpoints)} checkpoint(s), {job.settings.samples} samples each…")
        self._update_buttons()
        self.run_started.emit()
        thread.start()
        return True

    def cancel(self) -> None:
        """Stop within the current sample (or feature batch); finished rows stay."""
        if self._token is not None and self.running:
            self._token.cancel()
            self.progress.setFormat("Cancelling…")
            self.cancel_button.setEnabled(False)

    def threads_alive(self) -> int:
        threads = [t for t, _ in _orphans] + ([self._thread] if self._thread is not None else [])
        return sum(1 for t in threads if t.isRunning())

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel and wait for the worker thread; True when none is left running."""
        thread, worker = self._thread, self._worker
        if thread is None:
            return True
        if self._token is not None:
            self._token.cancel()
        stopped = thread.wait(timeout_ms)
        if not stopped:  # stuck in a model load: keep it referenced, a running QThread must not be deleted
            assert worker is not None
            _orphans.append((thread, worker))
        self._thread = self._worker = None
        if self.state == "running":
            self.state = "cancelled"
        self._update_buttons()
        return stopped

    @Slot(str, int, int)
    def _on_progress(self, what: str, done: int, total: int) -> None:
        if total <= 0:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        self.progress.setFormat(f"{what}  %v/%m" if total > 0 else what)

    @Slot(object)
    def _on_row(self, row: dict[str, Any]) -> None:
        if row.get("cached"):
            self.sample_cache_hits += 1
        self.results.append(row)
        for note in row.get("notes", []):
            if note not in self.notes:
                self.notes.append(note)
        self._add_table_row(len(self.results) - 1)
        self._refresh_chart()
        if self.table.currentRow() < 0:
            self.select_result(0)
        self._update_buttons()
        self.row_added.emit(row)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.state, self.last_error = "failed", message
        self._status(f"Failed: {message}", True)
        self.status.setToolTip(details)

    @Slot()
    def _on_cancelled(self) -> None:
        self.state = "cancelled"
        self._status(f"Cancelled: {len(self.results)} of {self._job_size()} checkpoint(s) measured")

    @Slot()
    def _on_finished(self) -> None:
        self.state = "finished"
        text = f"Done: {len(self.results)} checkpoint(s) in {time.monotonic() - self._started:.1f} s"
        if self.notes:
            text += "\nNote: fewer than 2048 images, so FID is biased upward; compare KID."
        self._status(text)

    def _job_size(self) -> int:
        return len(self._worker.job.checkpoints) if self._worker is not None else len(self.checkpoints)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self._thread
        if thread is None or self.sender() is not thread:
            return  # a thread that shutdown() already let go
        thread.wait()
        self._thread = self._worker = None
        if self.state == "running":  # no outcome signal arrived (should not happen)
            self.state = "cancelled"
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if self.state == "finished" else 0)
        self.progress.setFormat({"finished": "Done", "failed": "Failed", "cancelled": "Cancelled"}.get(
            self.state, "Idle"))
        self._update_buttons()
        self.message.emit(self.status.text())
        self.run_done.emit(self.state)

    # -- results -----------------------------------------------------------------------------------
    def clear_results(self) -> None:
        self.results = []
        self.table.setRowCount(0)
        self.chart.set_points([])
        self._show_grid(None)

    def _add_table_row(self, index: int) -> None:
        r = self.results[index]
        self.table.setSortingEnabled(False)
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(Path(r["checkpoint"]).name)
        name.setToolTip(r["checkpoint"] + ("\n(samples from the cache)" if r.get("cached") else ""))
        name.setData(Qt.ItemDataRole.UserRole + 1, index)
        cells: list[QTableWidgetItem] = [name]
        for value, text in ((r.get("step"), "" if r.get("step") is None else str(r["step"])),
                            (r.get("fid"), _num(r.get("fid"))), (r.get("kid"), _num(r.get("kid"))),
                            (r.get("kid_std"), _num(r.get("kid_std"), 3)),
                            (r.get("n_images"), str(r.get("n_images"))),
                            (r.get("seconds"), f"{r['seconds']:.1f}" + (" (cached)" if r.get("cached") else ""))):
            item = _NumItem(text)
            item.setData(Qt.ItemDataRole.UserRole, None if value is None else float(value))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            cells.append(item)
        for c, item in enumerate(cells):
            self.table.setItem(row, c, item)
        self.table.setSortingEnabled(True)

    def _refresh_chart(self) -> None:
        have_steps = all(r.get("step") is not None for r in self.results)
        points = [ChartPoint(float(r["step"]) if have_steps else float(i), r.get("fid"), r.get("kid"), r.get("kid_std"))
                  for i, r in enumerate(self.results)]
        self.chart.set_points(points, "step" if have_steps else "checkpoint (no step known)")

    def _result_index(self, table_row: int) -> int | None:
        item = self.table.item(table_row, 0)
        return None if item is None else item.data(Qt.ItemDataRole.UserRole + 1)

    def select_result(self, index: int) -> None:
        """Select the result `index` (in run order) in the table, which shows its samples."""
        for row in range(self.table.rowCount()):
            if self._result_index(row) == index:
                self.table.selectRow(row)
                self.table.setCurrentCell(row, 0)
                return

    def selected_index(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self._result_index(rows[0].row()) if rows else None

    def _selection_changed(self) -> None:
        index = self.selected_index()
        self.chart.set_selected(index)
        self._show_grid(None if index is None else self.results[index])

    def _show_grid(self, result: dict[str, Any] | None) -> None:
        self._grid_image = image_grid(result.get("images", [])) if result else None
        if self._grid_image is None:
            self.grid_label.setPixmap(QPixmap())
            self.grid_label.setText("Select a checkpoint to see its samples" if result is None else "No samples kept")
            self.grid_caption.setText("")
            return
        self._update_grid_pixmap()
        n = len(result.get("images", []))  # type: ignore[union-attr]
        self.grid_caption.setText(f"{Path(result['checkpoint']).name}: first {n} of {result['n_images']} samples")  # type: ignore[index]

    def grid_pixmap(self) -> QPixmap | None:
        pm = self.grid_label.pixmap()
        return None if pm is None or pm.isNull() else pm

    def _update_grid_pixmap(self) -> None:
        grid = self._grid_image
        if grid is None:
            return
        h, w = grid.shape[:2]
        img = QImage(np.ascontiguousarray(grid).data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        size = self.grid_label.contentsRect().size()
        scale = max(1, min(size.width() // w, size.height() // h))  # whole multiples keep pixels crisp
        pm = QPixmap.fromImage(img)
        if scale > 1:
            pm = pm.scaled(w * scale, h * scale, Qt.AspectRatioMode.KeepAspectRatio,
                           Qt.TransformationMode.FastTransformation)
        elif w > size.width() or h > size.height():
            pm = pm.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.grid_label.setText("")
        self.grid_label.setPixmap(pm)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._update_grid_pixmap()

    def export_csv(self, path: str | Path) -> Path:
        """Write the results (run order) as CSV, atomically: a failed write leaves the old file."""
        from diffedit.document.atomic import atomic_write

        data = rows_to_csv(self.results).encode("utf-8")
        out = atomic_write(path, lambda f: f.write(data))
        self._status(f"Exported {len(self.results)} row(s) to {out}")
        return out

    # -- state -------------------------------------------------------------------------------------
    def _status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setToolTip("")
        if error:
            self.last_error = text

    def _update_buttons(self) -> None:
        running = self.running
        for w in (self.reference_edit, self.ref_folder_button, self.ref_file_button, self.add_folder_button,
                  self.add_run_button, self.remove_button, self.clear_button, self.samples_spin,
                  self.sampler_combo, self.steps_spin, self.seed_spin):
            w.setEnabled(not running)
        self.run_button.setEnabled(not running and bool(self.checkpoints) and bool(self.reference_edit.text().strip()))
        self.cancel_button.setEnabled(running and not (self._token is not None and self._token.cancelled))
        self.export_button.setEnabled(bool(self.results))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


class FidDialog(QDialog):
    """A non-modal window around the panel; closing it (or its owner) stops the run and its thread."""

    def __init__(self, parent: QWidget | None = None, **panel_args: Any) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare checkpoints (FID)")
        self.setObjectName("fid-dialog")
        self.setModal(False)
        self.setSizeGripEnabled(True)
        self.panel = FidPanel(parent=self, **panel_args)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.panel)
        self.resize(1180, 720)
        self._owner = parent.window() if parent is not None else None
        if self._owner is not None:
            self._owner.installEventFilter(self)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.panel.shutdown)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._owner and event.type() == QEvent.Type.Close:
            self.panel.shutdown()
        return False

    def done(self, result: int) -> None:  # Close button, Escape and the window's close box all end here
        self.panel.shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.panel.shutdown()
        super().closeEvent(event)


def open_fid_panel(parent: QWidget, **panel_args: Any) -> FidDialog:
    """Show the FID window of `parent` (one per parent, reused), raised and focused."""
    dialog = parent.findChild(FidDialog, "fid-dialog", Qt.FindChildOption.FindDirectChildrenOnly)
    if dialog is None:
        if "host" not in panel_args:
            panel_args["host"] = getattr(getattr(parent, "task_panel", None), "host", None)  # the window's plugins
        dialog = FidDialog(parent, **panel_args)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
