"""Edit > Preferences writes Settings and applies what it can at once; Tools > Plugins toggles plugins."""

from PySide6.QtCore import Qt

from diffedit.plugins import PluginRecord
from diffedit.qt.main_window import MainWindow
from diffedit.qt.preferences import PluginsDialog
from diffedit.settings import Settings


def test_preferences_round_trip_and_apply(window: MainWindow) -> None:
    Settings(disabled_plugins=["x"]).save()
    window.new_document(20, 20)
    dialog = window.preferences_dialog()
    assert dialog.isVisible() and dialog.device.currentText() == "auto"
    dialog.device.setCurrentText("cpu")
    dialog.precision.setCurrentText("float16")
    dialog.model_folders.setPlainText("/models/a\n\n /models/b ")
    dialog.plugin_folders.setPlainText("/plugins")
    dialog.autosave.setValue(30)
    dialog.history.setValue(64)
    dialog.max_pixels.setValue(20)
    dialog.save()
    saved = Settings.load()
    assert (saved.device, saved.precision, saved.model_folders, saved.plugin_folders) == (
        "cpu", "float16", ["/models/a", "/models/b"], ["/plugins"])
    assert (saved.autosave_interval_s, saved.history_memory_mb, saved.max_image_pixels) == (30, 64, 20_000_000)
    assert saved.disabled_plugins == ["x"]  # not shown here, kept
    assert window.autosave.interval == 30 and window.doc.history.memory_limit == 64 * 1024 * 1024
    assert not dialog.isVisible()


def test_preferences_cancel_changes_nothing(window: MainWindow) -> None:
    dialog = window.preferences_dialog()
    dialog.device.setCurrentText("cuda")
    dialog.reject()
    assert not Settings.path().exists() and Settings.load().device == "auto"


def test_plugins_dialog_lists_the_host_plugins(window: MainWindow) -> None:
    dialog = window.plugins_dialog()
    names = [dialog.tree.topLevelItem(i).text(0) for i in range(dialog.tree.topLevelItemCount())]
    assert names == [r.name for r in window.task_panel.host.list_plugins()] and names
    assert "next time" in dialog.note.text()


def test_unchecking_a_plugin_disables_it_at_next_start(qtbot) -> None:
    records = [PluginRecord(name="good", source="entry point", registered=["task:a"]),
               PluginRecord(name="bad", source="folder", status="failed", error="ImportError: no module named z")]
    dialog = PluginsDialog(records)
    qtbot.addWidget(dialog)
    bad = dialog.item("bad")
    assert bad.text(1) == "failed" and "ImportError" in bad.text(4)
    bad.setCheckState(0, Qt.CheckState.Unchecked)
    assert Settings.load().disabled_plugins == ["bad"] and "disabled at the next start" in dialog.note.text()
    bad.setCheckState(0, Qt.CheckState.Checked)
    assert Settings.load().disabled_plugins == []
    assert PluginsDialog(records).item("good").checkState(0) == Qt.CheckState.Checked
