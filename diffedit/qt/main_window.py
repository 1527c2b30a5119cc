"""The editor window: one document, its canvas and panels, and the menus that act on it.

Every operation goes through a `_run` guard: a failure (a damaged file, a locked layer, a bad
radius) becomes a message box with the core's own message, and the document is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from diffedit.document import masks
from diffedit.document.document import Document
from diffedit.document.imagefiles import ImageFileError
from diffedit.document.io import OPEN_EXTENSIONS, export_image, open_document, save_document
from diffedit.document.layers import Layer, LayerLockedError, MaskLayer
from diffedit.plugins import PluginHost
from diffedit.qt.bindings import Connections
from diffedit.qt.canvas import Canvas
from diffedit.qt.device_status import DeviceLabel
from diffedit.qt.dialogs import NewDocumentDialog
from diffedit.qt.history_panel import HistoryPanel
from diffedit.qt.layers_panel import LayersPanel
from diffedit.qt.start_page import StartPage
from diffedit.qt.task_panel import TaskPanel
from diffedit.qt.tool_options import ToolOptionsBar
from diffedit.qt.tools import Tool, ToolState
from diffedit.tasks.base import TaskSpec

log = logging.getLogger(__name__)
APP_NAME = "DiffEdit"
OPEN_FILTER = f"Images and documents ({' '.join('*' + e for e in OPEN_EXTENSIONS)});;All files (*)"
EXPORT_FILTERS = {"PNG image (*.png)": ".png", "JPEG image (*.jpg *.jpeg)": ".jpg", "WebP image (*.webp)": ".webp"}
EXPECTED_ERRORS = (ImageFileError, ValueError, OSError, LayerLockedError, IndexError, KeyError)


class MainWindow(QMainWindow):
    """One document per window; with none, a start page offers to create or open one."""

    error_shown = Signal(str, str)  # (title, message), also shown in a message box

    def __init__(self, parent: QWidget | None = None, host: PluginHost | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self._conns = Connections()
        self.last_error: str | None = None
        self.tools = ToolState(self)
        self.canvas = Canvas(self.tools)
        self.start_page = StartPage()
        self.start_page.new_button.clicked.connect(self.new_document_dialog)
        self.start_page.open_button.clicked.connect(self.open_dialog)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(self.canvas)
        self.setCentralWidget(self.stack)
        self.layers_panel = LayersPanel(self)
        self.history_panel = HistoryPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.layers_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_panel)
        self.layers_panel.error.connect(self.show_error)
        self.task_panel = TaskPanel(host, self)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.task_panel)
        self.task_panel.error.connect(self.show_error)
        self.task_panel.message.connect(lambda text: self.statusBar().showMessage(text, 15000))
        self.task_panel.preview_changed.connect(self.canvas.set_preview)
        self.task_panel.result_added.connect(self._result_added)
        self.device_label = DeviceLabel()
        self.position_label = QLabel()
        self.zoom_label = QLabel()
        self.zoom_label.setMinimumWidth(56)
        self.position_label.setMinimumWidth(110)
        self.statusBar().addPermanentWidget(self.position_label)
        self.statusBar().addPermanentWidget(self.zoom_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self.canvas.cursor_moved.connect(self._show_position)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f}%"))
        self.canvas.message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self._doc_actions: list[QAction] = []
        self._build_menus()
        self.addToolBar(ToolOptionsBar(self.tools, self.tool_actions.values(), self))
        self.setAcceptDrops(True)
        self.resize(1180, 780)
        self.set_document(None)

    # -- actions and menus -----------------------------------------------------------------------
    def _action(
        self,
        menu: QMenu,
        text: str,
        slot: Callable[[], object],
        shortcut: object = None,
        needs_doc: bool = True,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(k) for k in keys])
        if tip:
            action.setStatusTip(tip)
        title = text.replace("&", "").rstrip("…")
        action.triggered.connect(lambda: self._run(title, slot))
        menu.addAction(action)
        if needs_doc:
            self._doc_actions.append(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        m = bar.addMenu("&File")
        self._action(m, "&New…", self.new_document_dialog, QKeySequence.StandardKey.New, needs_doc=False)
        self._action(m, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open, needs_doc=False)
        self._action(m, "&Save", self.save, QKeySequence.StandardKey.Save)
        self._action(m, "Save &As…", self.save_as_dialog, QKeySequence.StandardKey.SaveAs)
        self._action(
            m, "&Export…", self.export_dialog, "Ctrl+Shift+E", tip="Export the flattened image as PNG, JPEG or WebP"
        )
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.StandardKey.Quit, needs_doc=False)

        m = bar.addMenu("&Edit")
        self.undo_action = self._action(m, "&Undo", self.undo, QKeySequence.StandardKey.Undo)
        self.redo_action = self._action(m, "&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])

        m = bar.addMenu("&Select")
        self._action(m, "&All", lambda: masks.select_all(self._doc()), QKeySequence.StandardKey.SelectAll)
        self._action(m, "&None", lambda: masks.select_none(self._doc()), "Ctrl+Shift+A")
        self._action(m, "&Invert", lambda: self.transform_selection("invert"), "Ctrl+I")
        m.addSeparator()
        for op in ("grow", "shrink", "feather"):
            self._action(m, f"{op.capitalize()}…", lambda op=op: self.transform_selection_dialog(op))
        m.addSeparator()
        self._action(
            m,
            "From Layer &Alpha",
            lambda: self._doc().selection_from_alpha(),
            tip="Select where the active layer has pixels (or where a mask is set)",
        )

        m = bar.addMenu("&Layer")
        self._action(m, "&New Layer", lambda: self._doc().add_layer(), "Ctrl+Shift+N")
        self._action(m, "&Duplicate Layer", lambda: self._doc().duplicate_layer(self._active()), "Ctrl+J")
        self._action(m, "De&lete Layer", lambda: self._doc().delete_layer(self._active()))
        m.addSeparator()
        self._action(m, "&Merge Down", lambda: self._doc().merge_down(self._active()), "Ctrl+E")
        self._action(m, "&Flatten Image", lambda: self._doc().flatten())
        m.addSeparator()
        self._action(
            m,
            "F&ill with Brush Colour",
            self.fill_active,
            "Shift+Backspace",
            tip="Fill the selection (or the whole layer) of the active layer",
        )
        self._action(
            m,
            "&Clear",
            lambda: self._doc().clear_layer(self._active()),
            QKeySequence.StandardKey.Delete,
            tip="Clear the selection (or the whole layer) of the active layer",
        )

        m = bar.addMenu("&View")
        self._action(m, "Zoom &In", self.canvas.zoom_in, ["Ctrl+=", "Ctrl++"])
        self._action(m, "Zoom &Out", self.canvas.zoom_out, "Ctrl+-")
        self._action(m, "&Fit in Window", self.canvas.fit, "Ctrl+0")
        self._action(m, "&Actual Size (100%)", self.canvas.actual_size, "Ctrl+1")
        m.addSeparator()
        self.mask_action = QAction("Show Inpainting &Mask", self, checkable=True)
        self.mask_action.setShortcut(QKeySequence("Ctrl+Shift+M"))
        self.mask_action.setStatusTip("Show the mask layers as a tinted overlay (painting a mask shows it again)")
        m.addAction(self.mask_action)
        self.mask_action.setChecked(self.canvas.mask_shown)
        self.mask_action.toggled.connect(self.canvas.set_mask_shown)
        self.canvas.mask_shown_changed.connect(self.mask_action.setChecked)
        m.addSeparator()
        m.addAction(self.layers_panel.toggleViewAction())
        m.addAction(self.history_panel.toggleViewAction())
        m.addAction(self.task_panel.toggleViewAction())

        m = bar.addMenu("&Tools")
        group = QActionGroup(self)
        self.tool_actions: dict[Tool, QAction] = {}
        for tool in Tool:
            action = self._action(
                m, tool.label, lambda tool=tool: self.tools.set_tool(tool), tool.shortcut, needs_doc=False
            )
            action.setCheckable(True)
            action.setChecked(tool is self.tools.tool)
            action.setToolTip(f"{tool.label} ({tool.shortcut})")
            group.addAction(action)
            self.tool_actions[tool] = action
        self.tools.changed.connect(lambda: self.tool_actions[self.tools.tool].setChecked(True))
        m.addSeparator()
        self._action(m, "Smaller Brush", lambda: self.tools.step_size(False), "[", needs_doc=False)
        self._action(m, "Larger Brush", lambda: self.tools.step_size(True), "]", needs_doc=False)

    # -- the document ----------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        """Show a document (or the start page); the previous one is dropped without asking."""
        self._conns.clear()
        self.doc = doc
        self.canvas.set_document(doc)
        self.layers_panel.set_document(doc)
        self.history_panel.set_document(doc)
        self.task_panel.set_document(doc)
        if doc is not None:
            self._conns.connect(doc.history.changed, self._history_changed)
        self.stack.setCurrentWidget(self.canvas if doc is not None else self.start_page)
        for action in self._doc_actions:
            action.setEnabled(doc is not None)
        self._history_changed()
        if doc is not None:
            self.canvas.setFocus()

    def _history_changed(self) -> None:
        doc = self.doc
        self.setWindowTitle(f"{APP_NAME} — {doc.name}{'*' if doc.modified else ''}" if doc else APP_NAME)
        steps, index = (doc.history.steps, doc.history.index) if doc else ([], 0)
        self.undo_action.setEnabled(index > 0)
        self.redo_action.setEnabled(index < len(steps))
        self.undo_action.setText(f"&Undo {steps[index - 1]}" if index > 0 else "&Undo")
        self.redo_action.setText(f"&Redo {steps[index]}" if index < len(steps) else "&Redo")

    def _result_added(self, spec: TaskSpec, layers: list[Layer]) -> None:
        if "mask" in spec.inputs:  # let the result be seen; painting a mask shows the tint again
            self.canvas.set_mask_shown(False)

    def _doc(self) -> Document:
        if self.doc is None:
            raise ValueError("open or create a document first")
        return self.doc

    def _active(self) -> Layer:
        layer = self._doc().active
        if layer is None:
            raise ValueError("there is no active layer: add a layer first")
        return layer

    def _run(self, title: str, action: Callable[[], object]) -> bool:
        """Run a user action; report a failure in a message box instead of raising."""
        try:
            action()
        except EXPECTED_ERRORS as exc:
            self.show_error(f"{title} failed", str(exc))
            return False
        except Exception as exc:  # a bug must not take the user's unsaved work down with it
            log.exception("unexpected error in %s", title)
            self.show_error(f"{title} failed", f"Unexpected error: {exc!r}")
            return False
        return True

    def show_error(self, title: str, message: str, details: str = "") -> None:
        """A window-modal message box that does not block the caller (so tests and scripts go on)."""
        self.last_error = message
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.error_shown.emit(title, message)

    def _show_position(self, pos: tuple[int, int] | None) -> None:
        inside = (
            pos is not None and self.doc is not None and 0 <= pos[0] < self.doc.width and 0 <= pos[1] < self.doc.height
        )
        self.position_label.setText(f"{pos[0]}, {pos[1]} px" if pos is not None and inside else "")

    # -- files -----------------------------------------------------------------------------------
    def new_document(
        self, width: int, height: int, background: tuple[int, int, int, int] | None = (255, 255, 255, 255)
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

    def new_document_dialog(self) -> None:
        dialog = NewDocumentDialog(self, *((self.doc.width, self.doc.height) if self.doc else (512, 512)))
        if dialog.exec() == NewDocumentDialog.DialogCode.Accepted:
            self.new_document(*dialog.values())

    def open_path(self, path: str | Path) -> bool:
        """Open a file, replacing the current document only once the file has been read."""
        try:
            opened = open_document(path)
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
        return True

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open", self._dialog_dir(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def save(self) -> bool:
        doc = self._doc()
        if doc.path and Path(doc.path).suffix.lower() == ".ora":
            return self.save_as(doc.path)
        return self.save_as_dialog()

    def save_as(self, path: str | Path) -> bool:
        """Save as OpenRaster (the name gets .ora if it has no extension)."""
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".ora")
        ok = self._run("Save", lambda: save_document(self._doc(), target))
        if ok:
            self._history_changed()  # the name may have changed with the path
            self.statusBar().showMessage(f"Saved {target}", 6000)
        return ok

    def save_as_dialog(self) -> bool:
        doc = self._doc()
        suggestion = str(Path(self._dialog_dir()) / f"{doc.name}.ora")
        path, _ = QFileDialog.getSaveFileName(self, "Save As", suggestion, "OpenRaster document (*.ora)")
        return bool(path) and self.save_as(path)

    def export(self, path: str | Path) -> bool:
        ok = self._run("Export", lambda: export_image(self._doc(), path))
        if ok:
            self.statusBar().showMessage(f"Exported {path}", 6000)
        return ok

    def export_dialog(self) -> None:
        doc = self._doc()
        suggestion = str(Path(self._dialog_dir()) / f"{doc.name}.png")
        path, chosen = QFileDialog.getSaveFileName(self, "Export Image", suggestion, ";;".join(EXPORT_FILTERS))
        if path:
            self.export(path if Path(path).suffix else path + EXPORT_FILTERS.get(chosen, ".png"))

    def _dialog_dir(self) -> str:
        return str(Path(self.doc.path).parent) if self.doc and self.doc.path else str(Path.cwd())

    def maybe_discard(self) -> bool:
        """True when the current document may be replaced or closed (saved, unchanged, or discarded)."""
        if self.doc is None or not self.doc.modified:
            return True
        answer = self._ask_save_changes()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _ask_save_changes(self) -> QMessageBox.StandardButton:
        buttons = (
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
        )
        name = self.doc.name if self.doc else ""
        return QMessageBox.question(
            self, APP_NAME, f"Save the changes to '{name}'?", buttons, QMessageBox.StandardButton.Save
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.canvas.painting:
            self.canvas.end_stroke()
        if self.maybe_discard():
            self.set_document(None)
            self.task_panel.shutdown()  # no worker thread may outlive the window
            event.accept()
        else:
            event.ignore()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    # -- edits -----------------------------------------------------------------------------------
    def undo(self) -> None:
        if self.canvas.painting:
            self.canvas.end_stroke()
        self._doc().history.undo()

    def redo(self) -> None:
        self._doc().history.redo()

    def transform_selection(self, operation: str, radius: float = 0) -> bool:
        """Invert, grow, shrink or feather the selection (one undo step)."""
        return self._run(
            f"{operation.capitalize()} selection", lambda: masks.transform_selection(self._doc(), operation, radius)
        )

    def transform_selection_dialog(self, operation: str) -> None:
        if not self._doc().has_selection:
            raise ValueError("nothing is selected: make a selection first")
        radius, ok = QInputDialog.getInt(self, f"{operation.capitalize()} selection", "Radius (px):", 8, 1, 1000)
        if ok:
            self.transform_selection(operation, radius)

    def fill_active(self) -> None:
        layer = self._active()
        self._doc().fill_layer(layer, 255 if isinstance(layer, MaskLayer) else self.tools.rgba())
