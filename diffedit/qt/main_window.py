"""The editor window: one document, its canvas and panels, and the menus that act on it.

Every operation goes through a `_run` guard: a failure (a damaged file, a locked layer, a bad
radius) becomes a message box with the core's own message, and the document is left as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
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
from diffedit.document.layers import Layer, MaskLayer
from diffedit.plugins import PluginHost
from diffedit.qt import extra_menus
from diffedit.qt.bindings import Connections
from diffedit.qt.canvas import Canvas
from diffedit.qt.device_status import DeviceLabel
from diffedit.qt.file_actions import APP_NAME, EXPECTED_ERRORS, FileActions
from diffedit.qt.history_panel import HistoryPanel
from diffedit.qt.layers_panel import LayersPanel
from diffedit.qt.preferences import PluginsDialog, SettingsDialog
from diffedit.qt.rulers import CanvasArea
from diffedit.qt.session import AutosaveTimer, RecentFiles, sample_images
from diffedit.qt.start_page import StartPage
from diffedit.qt.task_panel import TaskPanel
from diffedit.qt.tool_options import ToolOptionsBar
from diffedit.qt.tools import Tool, ToolState
from diffedit.settings import Settings
from diffedit.tasks.base import TaskSpec

log = logging.getLogger(__name__)


class MainWindow(FileActions, QMainWindow):
    """One document per window; with none, a start page offers to create or open one."""

    error_shown = Signal(str, str)  # (title, message), also shown in a message box

    def __init__(self, parent: QWidget | None = None, host: PluginHost | None = None) -> None:
        super().__init__(parent)
        self.doc: Document | None = None
        self._conns = Connections()
        self.last_error: str | None = None
        self.tools = ToolState(self)
        self.canvas = Canvas(self.tools)
        self.settings = Settings.load()
        self.recent = RecentFiles(self)
        self.autosave = AutosaveTimer(self)
        self.start_page = StartPage(sample_images())
        self.start_page.new_button.clicked.connect(self.new_document_dialog)
        self.start_page.open_button.clicked.connect(self.open_dialog)
        self.start_page.open_requested.connect(self.open_path)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.start_page)
        self.canvas_area = CanvasArea(self.canvas)
        self.canvas_area.set_rulers_shown(bool(self.settings.show_rulers))
        self.stack.addWidget(self.canvas_area)
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
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent.changed.connect(lambda: self.fill_recent_menu(self.recent_menu))
        self.fill_recent_menu(self.recent_menu)
        self._action(m, "&Import as Layer…", self.import_layer_dialog, "Ctrl+Shift+I",
                     tip="Add an image file as a new layer of this document")
        m.addSeparator()
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
        m.addSeparator()
        self._action(m, "&Preferences…", self.preferences_dialog, "Ctrl+,",
                     needs_doc=False)

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
        self.rulers_action = QAction("Show &Rulers", self, checkable=True)
        self.rulers_action.setShortcut(QKeySequence("Ctrl+R"))
        self.rulers_action.setStatusTip("Show rulers in image pixels above and left of the canvas")
        self.rulers_action.setChecked(self.canvas_area.rulers_shown)
        self.rulers_action.toggled.connect(self.set_rulers_shown)
        m.addAction(self.rulers_action)
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
            action.setIconText(tool.short_label)
            group.addAction(action)
            self.tool_actions[tool] = action
        self.tools.changed.connect(lambda: self.tool_actions[self.tools.tool].setChecked(True))
        m.addSeparator()
        self._action(m, "Smaller Brush", lambda: self.tools.step_size(False), "[", needs_doc=False)
        self._action(m, "Larger Brush", lambda: self.tools.step_size(True), "]", needs_doc=False)
        self._action(m, "Swap Colours", self.tools.swap_colors, "X", needs_doc=False,
                     tip="Swap the brush and background colours")
        m.addSeparator()
        self._action(m, "&Train a Model…", lambda: extra_menus.open_training(self), needs_doc=False,
                     tip="Train a diffusion model on a folder of images")
        self._action(m, "&Compare Checkpoints (FID)…", lambda: extra_menus.open_fid(self), needs_doc=False,
                     tip="Measure FID and KID of checkpoints against reference images")
        self._action(m, "&Models…", lambda: extra_menus.open_models(self), needs_doc=False,
                     tip="List, add, import, download and remove models")
        self._action(m, "&Plugins…", self.plugins_dialog, needs_doc=False)

        m = bar.addMenu("&Image")
        self._action(m, "&Canvas Size…", lambda: extra_menus.canvas_size(self))
        self._action(m, "&Scale Image…", lambda: extra_menus.scale_image(self))
        self.plugin_actions = extra_menus.install_plugin_actions(self, self.task_panel.host.registry.actions)

    # -- the document ----------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        """Show a document (or the start page); the previous one is dropped without asking."""
        self._conns.clear()
        self.doc = doc
        self.canvas.set_document(doc)
        self.layers_panel.set_document(doc)
        self.history_panel.set_document(doc)
        self.task_panel.set_document(doc)
        self.autosave.set_document(doc)
        if doc is not None:
            doc.history.memory_limit = self.settings.history_memory_mb * 1024 * 1024
            self._conns.connect(doc.history.changed, self._history_changed)
        self.stack.setCurrentWidget(self.canvas_area if doc is not None else self.start_page)
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

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.canvas.painting:
            self.canvas.end_stroke()
        if self.maybe_discard():
            self.set_document(None)
            self.task_panel.shutdown()  # no worker thread may outlive the window
            extra_menus.shutdown(self)
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

    # -- preferences -----------------------------------------------------------------------------
    def preferences_dialog(self) -> SettingsDialog:
        """Edit > Preferences: non-blocking; saving applies autosave and history memory at once."""
        dialog = SettingsDialog(Settings.load(), self)
        dialog.saved.connect(self.apply_settings)
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.autosave.set_interval(settings.autosave_interval_s)
        if self.doc is not None:
            self.doc.history.memory_limit = settings.history_memory_mb * 1024 * 1024
        self.statusBar().showMessage("Preferences saved", 6000)

    def set_rulers_shown(self, shown: bool) -> None:
        """View > Show Rulers; remembered in the settings file (re-read first, so no other change is lost)."""
        self.canvas_area.set_rulers_shown(shown)
        self.rulers_action.setChecked(shown)
        if self.settings.show_rulers == shown:
            return
        self.settings.show_rulers = shown
        settings = Settings.load()
        settings.show_rulers = shown
        try:
            settings.save()
        except OSError as exc:
            log.warning("could not remember the rulers setting: %s", exc)

    def plugins_dialog(self) -> PluginsDialog:
        dialog = PluginsDialog(self.task_panel.host.list_plugins(), self)  # default_host() unless a test gave one
        self.plugins_window = dialog
        dialog.open()
        return dialog

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
