"""Edit > Preferences (the JSON `Settings`) and Tools > Plugins (what loaded, and switching plugins off).

Both are non-blocking dialogs. Settings are validated by the widgets' ranges, so what is saved is
always loadable; plugin changes are remembered in Settings and take effect at the next start.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from diffedit.plugins import PluginRecord, set_plugin_enabled
from diffedit.settings import Settings

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32", "float16", "bfloat16")


def _combo(values: tuple[str, ...], current: str) -> QComboBox:
    combo = QComboBox()
    combo.addItems(list(values))
    if current not in values:  # keep a value written by hand or a newer version
        combo.addItem(current)
    combo.setCurrentText(current)
    return combo


def _spin(low: int, high: int, value: int, suffix: str, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(min(max(value, low), high))
    spin.setSuffix(suffix)
    spin.setToolTip(tip)
    return spin


def _folders(paths: list[str]) -> QPlainTextEdit:
    edit = QPlainTextEdit("\n".join(paths))
    edit.setPlaceholderText("One folder per line")
    edit.setFixedHeight(64)
    return edit


class SettingsDialog(QDialog):
    """Device, precision, model and plugin folders, autosave, history memory and the image size limit."""

    saved = Signal(object)  # the Settings just written

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.original = settings
        self.device = _combo(DEVICES, settings.device)
        self.precision = _combo(PRECISIONS, settings.precision)
        self.model_folders = _folders(settings.model_folders)
        self.plugin_folders = _folders(settings.plugin_folders)
        self.autosave = _spin(0, 3600, settings.autosave_interval_s, " s", "Seconds between recovery saves; 0 = off")
        self.history = _spin(16, 65536, settings.history_memory_mb, " MB",
                             "Memory undo may keep; the oldest steps are dropped beyond it")
        self.max_pixels = _spin(1, 1000, max(1, settings.max_image_pixels // 1_000_000), " MP",
                                "Larger images are refused before decoding (protects against decompression bombs)")
        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("Model folders", self.model_folders)
        form.addRow("Plugin folders", self.plugin_folders)
        form.addRow("Autosave every", self.autosave)
        form.addRow("Undo history memory", self.history)
        form.addRow("Largest image", self.max_pixels)
        note = QLabel("Device, precision and folders apply to the next run or start; the rest at once.")
        note.setWordWrap(True)
        note.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(520, 0)

    def values(self) -> Settings:
        """The settings as edited (fields this dialog does not show, such as disabled plugins, kept)."""

        def lines(edit: QPlainTextEdit) -> list[str]:
            return [ln.strip() for ln in edit.toPlainText().splitlines() if ln.strip()]

        return replace(
            self.original,
            device=self.device.currentText(),
            precision=self.precision.currentText(),
            model_folders=lines(self.model_folders),
            plugin_folders=lines(self.plugin_folders),
            autosave_interval_s=self.autosave.value(),
            history_memory_mb=self.history.value(),
            max_image_pixels=self.max_pixels.value() * 1_000_000,
        )

    def save(self) -> None:
        settings = self.values()
        settings.disabled_plugins = Settings.load().disabled_plugins  # the Plugins dialog may have changed them
        settings.save()
        self.saved.emit(settings)
        self.accept()


class PluginsDialog(QDialog):
    """Every plugin found, its status and error; unchecking one disables it from the next start."""

    COLUMNS = ("Plugin", "Status", "Source", "Provides", "Error")

    def __init__(self, records: list[PluginRecord], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Plugins")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(self.COLUMNS))
        self.tree.setRootIsDecorated(False)
        disabled = set(Settings.load().disabled_plugins)
        for rec in records:
            item = QTreeWidgetItem([rec.name, rec.status, rec.source, ", ".join(rec.registered), rec.error])
            item.setData(0, Qt.ItemDataRole.UserRole, rec.name)
            item.setCheckState(0, Qt.CheckState.Unchecked if rec.name in disabled else Qt.CheckState.Checked)
            item.setToolTip(4, rec.error)
            item.setToolTip(3, "\n".join(rec.registered))
            self.tree.addTopLevelItem(item)
        for col in range(3):
            self.tree.resizeColumnToContents(col)
        self.tree.setColumnWidth(3, 280)  # long lists (all samplers) are in the tooltip; keep Error in view
        self.tree.itemChanged.connect(self._changed)
        self.note = QLabel("Unchecked plugins are not loaded. Changes take effect the next time DiffEdit starts.")
        self.note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.install_button = QPushButton("Install…")
        self.install_button.setToolTip("Install a pure-Python plugin (a .whl, a plugin folder or a .py file) into "
                                       "your plugin folder; it loads at the next start")
        menu = QMenu(self.install_button)
        menu.addAction("Wheel or .py file…", self._choose_file)
        menu.addAction("Plugin folder…", self._choose_folder)
        self.install_button.setMenu(menu)
        buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.resize(760, 360)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Install plugin", "", "Plugins (*.whl *.py)")
        if path:
            self.install_path(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Install plugin folder")
        if path:
            self.install_path(path)

    def install_path(self, path: str) -> bool:
        """Install the plugin at `path` (see diffedit.plugin_install); the note says what happened."""
        from diffedit.plugin_install import PluginInstallError, install

        try:
            item = install(path)
        except (PluginInstallError, OSError) as exc:
            self.note.setText(f"Not installed: {exc}")
            return False
        self.note.setText(f"Installed {item.name} {item.version} into {item.path}. It loads the next time DiffEdit "
                          f"starts.")
        return True

    def item(self, name: str) -> QTreeWidgetItem:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == name:
                return item
        raise KeyError(name)

    def _changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column == 0:
            enabled = item.checkState(0) == Qt.CheckState.Checked
            set_plugin_enabled(str(item.data(0, Qt.ItemDataRole.UserRole)), enabled)
            self.note.setText(f"'{item.text(0)}' will be {'enabled' if enabled else 'disabled'} at the next start.")
