"""Tools > Models…: the models in the model folders (task, size, source, license, hash), and buttons to
add a folder, import a file or a diffusers folder, download, remove and see details.

All the work is `diffedit.model_manager`'s; downloads run on a QThread behind a QProgressDialog whose
Cancel stops them between chunks (a `.part` file is kept, so trying again resumes).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from diffedit import model_manager as mm
from diffedit.downloads import DownloadCancelled, check_sha256
from diffedit.qt.workers import error_text
from diffedit.tasks.cancel import CancelToken

COLUMNS = ("Name", "Tasks", "Size", "Source", "License", "SHA-256", "Path")
Job = Callable[[Callable[[int, int | None], None], CancelToken], Path]  # (progress, token) -> model folder


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return ""


class DownloadWorker(QObject):
    """Runs one download job in a worker thread; signals are emitted from that thread."""

    progress = Signal(object, object)  # bytes so far, total bytes or None (Python ints: no 2 GB limit)
    finished = Signal(object)  # the model folder
    failed = Signal(str, str)  # message, details
    cancelled = Signal()
    done = Signal()

    def __init__(self, job: Job, token: CancelToken) -> None:
        super().__init__()
        self.job, self.token = job, token

    @Slot()
    def run(self) -> None:
        try:
            path = self.job(lambda done, total: self.progress.emit(done, total), self.token)
        except DownloadCancelled:
            self.cancelled.emit()
        except Exception as exc:  # the editor must never go down with a download
            self.failed.emit(error_text(exc), traceback.format_exc())
        else:
            self.finished.emit(path)
        finally:
            self.done.emit()


class DownloadDialog(QDialog):
    """Pick a catalogue model, or give a URL with its SHA-256."""

    URL_ENTRY = "A URL with its SHA-256…"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download a Model")
        self.catalogue = mm.load_catalogue()
        self.choice = QComboBox()
        for item in self.catalogue:
            self.choice.addItem(f"{item.name} — {', '.join(item.tasks)} ({item.license})", item.name)
        self.choice.addItem(self.URL_ENTRY, "")
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.url_edit, self.sha_edit, self.name_edit = QLineEdit(), QLineEdit(), QLineEdit()
        self.url_edit.setPlaceholderText("https://…/model.zip (a .zip of a model folder)")
        self.sha_edit.setPlaceholderText("64 hex digits, from a source you trust")
        self.name_edit.setPlaceholderText("default: from the catalogue or the file name")
        form = QFormLayout()
        form.addRow("Model", self.choice)
        form.addRow("", self.about)
        form.addRow("URL", self.url_edit)
        form.addRow("SHA-256", self.sha_edit)
        form.addRow("Folder name", self.name_edit)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Download")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.choice.currentIndexChanged.connect(self._changed)
        self._changed()

    def _changed(self) -> None:
        name = self.choice.currentData()
        is_url = not name
        self.url_edit.setEnabled(is_url)
        self.sha_edit.setEnabled(is_url)
        if is_url:
            self.about.setText("The file is checked against the SHA-256 before it is used.")
            return
        item = mm.catalogue_item(name)
        pin = f"revision {item.revision}" if item.revision else "revision not pinned (the current main branch)"
        self.about.setText(f"{item.description}\n{item.where} · {item.license} · {human_size(item.size)} · {pin}")

    def job(self) -> tuple[str, Job]:
        """(label, job) for what is filled in; ValueError says what is missing."""
        name = self.name_edit.text().strip() or None
        key = self.choice.currentData()
        if key:
            item = mm.catalogue_item(key)
            return item.name, lambda progress, token: mm.fetch_item(item, name, progress, token)
        url = self.url_edit.text().strip()
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError("give an http:// or https:// URL")
        sha = check_sha256(self.sha_edit.text())
        return url.rsplit("/", 1)[-1], lambda progress, token: mm.fetch_url(url, sha, name, progress, token)

    def _accept(self) -> None:
        try:
            self.job()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.accept()


class ModelsDialog(QDialog):
    models_changed = Signal()
    download_done = Signal(str)  # "finished", "failed" or "cancelled"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(900, 420)
        self.models: list[mm.ModelInfo] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.show_details())
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for label, slot in (("Add Folder…", self.add_folder), ("Import File…", self.import_file),
                            ("Import Diffusers Folder…", self.import_folder), ("Download…", self.download),
                            ("Remove", self.remove_selected), ("Details", self.show_details)):
            button = QPushButton(label)
            button.clicked.connect(lambda _=False, slot=slot: slot())
            row.addWidget(button)
            self.buttons[label.rstrip("…")] = button
        row.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        layout.addLayout(row)
        self._thread: QThread | None = None
        self._worker: DownloadWorker | None = None
        self._token: CancelToken | None = None
        self.progress_dialog: QProgressDialog | None = None
        self.refresh()

    # -- the table ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        self.models = mm.scan()
        self.table.setRowCount(len(self.models))
        for r, m in enumerate(self.models):
            cells = (m.name, ", ".join(m.tasks), human_size(m.size), m.source, m.license or "—",
                     (m.sha256 or "—")[:16], str(m.path))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(m.sha256 if c == 5 and m.sha256 else text)
                self.table.setItem(r, c, item)
        self._update_buttons()

    def selected(self) -> mm.ModelInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows else None

    def select(self, name: str) -> bool:
        for r, m in enumerate(self.models):
            if m.name == name:
                self.table.selectRow(r)
                return True
        return False

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        self.buttons["Remove"].setEnabled(chosen and self._thread is None)
        self.buttons["Details"].setEnabled(chosen)
        self.buttons["Download"].setEnabled(self._thread is None)

    def _changed(self, message: str) -> None:
        self.refresh()
        self.status.setText(message)
        self.models_changed.emit()

    def _try(self, action: Callable[[], str]) -> bool:
        try:
            message = action()
        except (ValueError, OSError, RuntimeError) as exc:
            self.status.setText(f"Failed: {error_text(exc)}")
            return False
        self._changed(message)
        return True

    # -- buttons ------------------------------------------------------------------------------------
    def add_folder(self, folder: str | None = None) -> bool:
        folder = folder or QFileDialog.getExistingDirectory(self, "Add a folder of models", str(Path.home()))
        return bool(folder) and self._try(lambda: f"Added the model folder {mm.add_folder(folder)}")

    def import_file(self, path: str | None = None) -> bool:
        path = path or QFileDialog.getOpenFileName(
            self, "Import a model file", str(Path.home()),
            "Models (*.zip diffedit.json *.safetensors *.ckpt *.pt *.pth *.bin);;All files (*)")[0]
        return bool(path) and self._try(lambda: f"Imported {mm.import_file(path)}")

    def import_folder(self, folder: str | None = None) -> bool:
        folder = folder or QFileDialog.getExistingDirectory(
            self, "Import a diffusers or checkpoint folder", str(Path.home()))
        return bool(folder) and self._try(lambda: f"Imported {mm.import_folder(folder)}")

    def remove_selected(self) -> bool:
        info = self.selected()
        if info is None:
            return False
        if info.managed:
            question = f"Delete {info.name} ({human_size(info.size)})?\n{info.path}"
            if not self._ask("Remove Model", question):
                return False
            return self._try(lambda: mm.remove(str(info.path)))
        if info.folder is None:
            return False
        question = (f"{info.name} is not in the user models folder, so it is not deleted.\n"
                    f"Remove its model folder {info.folder} from the list (the files stay)?")
        if not self._ask("Remove Model Folder", question):
            return False
        return self._try(lambda: mm.remove(str(info.folder)))

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def details_text(self, info: mm.ModelInfo) -> str:
        full = mm.describe(info.path)
        lines = [f"Name: {full.name}", f"Kind: {full.kind}", f"Tasks: {', '.join(full.tasks) or '—'}",
                 f"Size: {human_size(full.size)} ({full.size} bytes)", f"Source: {full.source}",
                 f"License: {full.license or 'not recorded'}",
                 f"Weights SHA-256: {full.sha256 or 'not recorded (diffedit models list --hash computes it)'}",
                 f"Path: {full.path}"]
        if full.description:
            lines.append(f"Description: {full.description}")
        return "\n".join(lines)

    def show_details(self) -> None:
        info = self.selected()
        if info is not None:
            box = QMessageBox(QMessageBox.Icon.Information, f"Model: {info.name}", self.details_text(info),
                              QMessageBox.StandardButton.Close, self)
            box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.details_box = box
            box.open()

    # -- downloads ----------------------------------------------------------------------------------
    def download(self) -> None:
        dialog = DownloadDialog(self)
        self.download_dialog = dialog
        dialog.accepted.connect(lambda: self.start_download(*dialog.job()))
        dialog.open()

    @property
    def downloading(self) -> bool:
        return self._thread is not None

    def start_download(self, label: str, job: Job) -> None:
        if self._thread is not None:
            return
        self._token = CancelToken()
        progress = QProgressDialog(f"Downloading {label}…", "Cancel", 0, 0, self)
        progress.setWindowTitle("Download")
        progress.setMinimumDuration(0)
        progress.setAutoClose(False)
        progress.setAutoReset(False)
        progress.canceled.connect(self.cancel_download)
        self.progress_dialog = progress
        thread = QThread()
        thread.setObjectName("diffedit-download")
        worker = DownloadWorker(job, self._token)
        worker.moveToThread(thread)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        self.status.setText(f"Downloading {label}…")
        self._update_buttons()
        progress.show()
        thread.start()

    def cancel_download(self) -> None:
        if self._token is not None:
            self._token.cancel()
            self.status.setText("Cancelling…")

    @Slot(object, object)
    def _on_progress(self, done: int, total: int | None) -> None:
        if self.progress_dialog is None:
            return
        if total:
            self.progress_dialog.setMaximum(max(1, total // 1024))  # kB: stays inside a C int
            self.progress_dialog.setValue(min(done, total) // 1024)
            self.progress_dialog.setLabelText(f"{human_size(done)} of {human_size(total)}")
        else:
            self.progress_dialog.setMaximum(0)
            self.progress_dialog.setLabelText(f"{human_size(done)}")

    @Slot(object)
    def _on_finished(self, path: Path) -> None:
        self._outcome = "finished"
        self._changed(f"Downloaded {path}")
        self.select(Path(path).name)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self._outcome = "failed"
        self.status.setText(f"Download failed: {message}")
        self.status.setToolTip(details)

    @Slot()
    def _on_cancelled(self) -> None:
        self._outcome = "cancelled"
        self.status.setText("Download cancelled; downloading it again resumes where it stopped")

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self._thread
        if thread is None:
            return
        thread.wait()
        self._thread = self._worker = None
        if self.progress_dialog is not None:
            self.progress_dialog.canceled.disconnect(self.cancel_download)
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None
        self._update_buttons()
        self.download_done.emit(getattr(self, "_outcome", "cancelled"))

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel a download and wait for its thread; True when none is left running."""
        thread = self._thread
        if thread is None:
            return True
        self.cancel_download()
        if not thread.wait(timeout_ms):
            return False
        self._on_thread_finished()
        return True

    def done(self, result: int) -> None:  # closing the dialog stops a download (its .part is kept)
        self.shutdown()
        super().done(result)


def open_models_dialog(parent: QWidget | None = None) -> ModelsDialog:
    dialog = ModelsDialog(parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
