"""The File side of the editor window: new, open (and recent, samples, recovery), import, save, export.

A mixin of `MainWindow`, split off to keep each module readable; it uses the window's `doc`, `_run`,
`show_error`, `set_document`, `recent` and `autosave`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from diffedit.document.autosave import RecoveryFile, find_recovery_files
from diffedit.document.document import Document
from diffedit.document.imagefiles import READ_EXTENSIONS, ImageFileError
from diffedit.document.io import OPEN_EXTENSIONS, export_image, import_layer, open_document, save_document
from diffedit.document.layers import LayerLockedError
from diffedit.qt.dialogs import NewDocumentDialog
from diffedit.qt.session import RecoveryDialog
from diffedit.settings import Settings

if TYPE_CHECKING:
    from diffedit.qt.main_window import MainWindow

APP_NAME = "DiffEdit"
OPEN_FILTER = f"Images and documents ({' '.join('*' + e for e in OPEN_EXTENSIONS)});;All files (*)"
IMPORT_FILTER = f"Images ({' '.join('*' + e for e in READ_EXTENSIONS)});;All files (*)"
EXPORT_FILTERS = {"PNG image (*.png)": ".png", "JPEG image (*.jpg *.jpeg)": ".jpg", "WebP image (*.webp)": ".webp"}
EXPECTED_ERRORS = (ImageFileError, ValueError, OSError, LayerLockedError, IndexError, KeyError)


class FileActions:
    """File menu operations for `MainWindow` (only ever mixed into it)."""

    recovery_dialog: RecoveryDialog | None = None

    def new_document(
        self: MainWindow, width: int, height: int,
        background: tuple[int, int, int, int] | None = (255, 255, 255, 255),
    ) -> bool:
        if not self.maybe_discard():
            return False

        def create() -> None:
            doc = Document(width, height, name="Untitled")
            layer = doc.add_layer(name="Background")
            if background is not None:
                doc.fill_layer(layer, background)
            doc.history.clear()  # a fresh document starts clean, with nothing to undo
            self.set_document(doc)

        return self._run("New document", create)

    def new_document_dialog(self: MainWindow) -> None:
        dialog = NewDocumentDialog(self, *((self.doc.width, self.doc.height) if self.doc else (512, 512)))
        if dialog.exec() == NewDocumentDialog.DialogCode.Accepted:
            self.new_document(*dialog.values())

    def open_path(self: MainWindow, path: str | Path) -> bool:
        """Open a file, replacing the current document only once the file has been read."""
        try:
            opened = open_document(path, Settings.load().max_image_pixels)
        except EXPECTED_ERRORS as exc:
            self.show_error("Could not open the file", str(exc))
            return False
        if not self.maybe_discard():
            return False
        self.set_document(opened.document)
        doc = opened.document
        count = len(doc.layers)
        summary = f"Opened {Path(path).name} ({doc.width} × {doc.height}, {count} layer{'s' if count != 1 else ''})"
        self.statusBar().showMessage("; ".join([summary, *opened.notes]))
        self.recent.add(path)
        return True

    def open_dialog(self: MainWindow) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open", self._dialog_dir(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def fill_recent_menu(self: MainWindow, menu: QMenu) -> None:
        """Rebuild File > Open Recent (and the start page's list) from the stored recent files."""
        menu.clear()
        paths = self.recent.paths()
        for i, p in enumerate(paths):
            action = menu.addAction(f"&{i + 1 if i < 9 else 0} {Path(p).name}")
            action.setToolTip(p)
            action.triggered.connect(lambda _=False, p=p: self.open_path(p))
        if paths:
            menu.addSeparator()
        menu.addAction("Clear Recent Files", self.recent.clear).setEnabled(bool(paths))
        self.start_page.set_recent(paths)

    def import_layer(self: MainWindow, path: str | Path) -> bool:
        """File > Import as Layer: add an image file as a new layer (one undo step)."""
        def run() -> None:
            layer, notes = import_layer(self._doc(), path, Settings.load().max_image_pixels)
            self.statusBar().showMessage("; ".join([f"Imported {Path(path).name} as layer '{layer.name}'", *notes]))

        return self._run("Import as layer", run)

    def import_layer_dialog(self: MainWindow) -> None:
        self._doc()
        path, _ = QFileDialog.getOpenFileName(self, "Import as Layer", self._dialog_dir(), IMPORT_FILTER)
        if path:
            self.import_layer(path)

    # -- crash recovery ----------------------------------------------------------------------------
    def offer_recovery(self: MainWindow, files: list[RecoveryFile] | None = None) -> RecoveryDialog | None:
        """After a crash: a non-blocking dialog listing the recovery files, to open or discard each."""
        files = find_recovery_files() if files is None else files
        if not files:
            return None
        dialog = RecoveryDialog(files, self)
        dialog.open_requested.connect(self.open_recovery)
        self.recovery_dialog = dialog
        dialog.show()  # modeless: the user can start working and decide later
        return dialog

    def open_recovery(self: MainWindow, rec: RecoveryFile) -> bool:
        """Open a recovery file as the unsaved document it was; the file itself is then removed."""
        if not self.maybe_discard():
            return False
        try:
            doc = open_document(rec.path).document
        except EXPECTED_ERRORS as exc:
            self.show_error("Could not recover the document", str(exc))
            return False
        doc.name = rec.name
        orig = rec.original_path
        doc.path = orig if orig and Path(orig).suffix.lower() == ".ora" else None
        doc.history.mark_modified()  # unsaved work: closing asks to save it
        self.set_document(doc)
        for p in (rec.path, rec.path.with_suffix(".json")):
            p.unlink(missing_ok=True)
        self.statusBar().showMessage(f"Recovered '{rec.name}': save it to keep it", 10000)
        return True

    # -- saving ------------------------------------------------------------------------------------
    def save(self: MainWindow) -> bool:
        doc = self._doc()
        if doc.path and Path(doc.path).suffix.lower() == ".ora":
            return self.save_as(doc.path)
        return self.save_as_dialog()

    def save_as(self: MainWindow, path: str | Path) -> bool:
        """Save as OpenRaster (the name gets .ora if it has no extension); the recovery file goes."""
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".ora")
        ok = self._run("Save", lambda: save_document(self._doc(), target))
        if ok:
            self._history_changed()  # the name may have changed with the path
            self.statusBar().showMessage(f"Saved {target}", 6000)
            self.recent.add(target)
            if self.autosave.autosaver is not None:
                self.autosave.autosaver.discard()
        return ok

    def save_as_dialog(self: MainWindow) -> bool:
        doc = self._doc()
        suggestion = str(Path(self._dialog_dir()) / f"{doc.name}.ora")
        path, _ = QFileDialog.getSaveFileName(self, "Save As", suggestion, "OpenRaster document (*.ora)")
        return bool(path) and self.save_as(path)

    def export(self: MainWindow, path: str | Path) -> bool:
        ok = self._run("Export", lambda: export_image(self._doc(), path))
        if ok:
            self.statusBar().showMessage(f"Exported {path}", 6000)
        return ok

    def export_dialog(self: MainWindow) -> None:
        doc = self._doc()
        suggestion = str(Path(self._dialog_dir()) / f"{doc.name}.png")
        path, chosen = QFileDialog.getSaveFileName(self, "Export Image", suggestion, ";;".join(EXPORT_FILTERS))
        if path:
            self.export(path if Path(path).suffix else path + EXPORT_FILTERS.get(chosen, ".png"))

    def _dialog_dir(self: MainWindow) -> str:
        return str(Path(self.doc.path).parent) if self.doc and self.doc.path else str(Path.cwd())

    def maybe_discard(self: MainWindow) -> bool:
        """True when the current document may be replaced or closed (saved, unchanged, or discarded)."""
        if self.doc is None or not self.doc.modified:
            return True
        answer = self._ask_save_changes()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _ask_save_changes(self: MainWindow) -> QMessageBox.StandardButton:
        buttons = (
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
        )
        name = self.doc.name if self.doc else ""
        return QMessageBox.question(
            self, APP_NAME, f"Save the changes to '{name}'?", buttons, QMessageBox.StandardButton.Save
        )
