"""What the editor remembers between and during sessions: recent files, bundled samples, autosave and
crash recovery.

Recent files live in a QSettings ini file next to settings.json (DIFFEDIT_CONFIG_DIR moves both, so
tests never touch the user's real lists). Autosave logic is the core's `Autosaver`; here a QTimer ticks it.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from diffedit.document.autosave import Autosaver, RecoveryFile
from diffedit.document.document import Document
from diffedit.settings import Settings, config_dir

MAX_RECENT = 10
SAMPLE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")


def samples_dir() -> Path:
    """resources/samples next to the package (a source checkout or editable install)."""
    return Path(__file__).resolve().parents[2] / "resources" / "samples"


def sample_images() -> list[Path]:
    folder = samples_dir()
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SAMPLE_EXTENSIONS) if folder.is_dir() else []


class RecentFiles(QObject):
    """The most recently opened or saved files, newest first; files that vanished are dropped."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = QSettings(str(config_dir() / "editor.ini"), QSettings.Format.IniFormat)

    def paths(self) -> list[str]:
        value = self._store.value("recent_files", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if Path(p).is_file()]

    def add(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        self._write([p, *[q for q in self.paths() if q != p]][:MAX_RECENT])

    def clear(self) -> None:
        self._write([])

    def _write(self, paths: list[str]) -> None:
        self._store.setValue("recent_files", paths)
        self._store.sync()
        self.changed.emit()


class AutosaveTimer(QObject):
    """Ticks an `Autosaver` for the open document; a clean save or close discards its recovery file."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.autosaver: Autosaver | None = None
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.tick)
        self.set_interval(Settings.load().autosave_interval_s)

    def set_interval(self, seconds: int) -> None:
        """Seconds between recovery writes; 0 turns autosave off. The timer checks 4 times per interval."""
        self.interval = max(0, int(seconds))
        if self.autosaver is not None:
            self.autosaver.interval = self.interval
        if self.interval:
            self.timer.start(max(250, self.interval * 250))
        else:
            self.timer.stop()

    def set_document(self, doc: Document | None) -> None:
        """Watch another document; the previous one's recovery file goes (its work was saved or dropped)."""
        self.discard()
        self.autosaver = Autosaver(doc, interval=self.interval) if doc is not None else None

    def tick(self) -> Path | None:
        if self.autosaver is None or not self.interval:
            return None
        try:
            return self.autosaver.tick()
        except OSError:  # a full disk must not interrupt editing; the next tick tries again
            return None

    def discard(self) -> None:
        if self.autosaver is not None:
            self.autosaver.doc.history.changed.disconnect(self.autosaver._history_changed)
            self.autosaver.discard()
            self.autosaver = None


class RecoveryDialog(QDialog):
    """Offers the recovery files a crash left behind: open one, or discard them. Not modal."""

    open_requested = Signal(object)  # RecoveryFile

    def __init__(self, files: list[RecoveryFile], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Recover unsaved work")
        self.files = list(files)
        self.list = QListWidget()
        for rec in self.files:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.saved_at))
            where = rec.original_path or "never saved"
            item = QListWidgetItem(f"{rec.name} — autosaved {when} ({where})")
            item.setData(Qt.ItemDataRole.UserRole, rec)
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _item: self.open_selected())
        buttons = QDialogButtonBox()
        self.open_button = QPushButton("Open")
        self.discard_button = QPushButton("Discard")
        buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.open_button.clicked.connect(self.open_selected)
        self.discard_button.clicked.connect(self.discard_selected)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("DiffEdit did not close cleanly last time. These documents had unsaved changes:"))
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(560, 260)

    def _selected(self) -> QListWidgetItem | None:
        return self.list.currentItem()

    def open_selected(self) -> None:
        """Open the chosen recovery file; it is removed from the list (and from disk once opened)."""
        item = self._selected()
        if item is not None:
            self.open_requested.emit(item.data(Qt.ItemDataRole.UserRole))
            self._remove(item)

    def discard_selected(self) -> None:
        item = self._selected()
        if item is not None:
            rec: RecoveryFile = item.data(Qt.ItemDataRole.UserRole)
            for p in (rec.path, rec.path.with_suffix(".json")):
                p.unlink(missing_ok=True)
            self._remove(item)

    def _remove(self, item: QListWidgetItem) -> None:
        self.list.takeItem(self.list.row(item))
        if self.list.count() == 0:
            self.accept()
