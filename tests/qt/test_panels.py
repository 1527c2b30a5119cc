"""The Layers and History docks drive the document and follow its undo history."""

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from diffedit.qt.main_window import MainWindow


def _names(window: MainWindow) -> list[str]:
    lst = window.layers_panel.list
    return [lst.item(i).text() for i in range(lst.count())]


def test_layers_panel_adds_renames_hides_reorders_and_deletes(window: MainWindow, png_path: Path, qtbot) -> None:
    window.open_path(png_path)
    panel = window.layers_panel
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    assert _names(window) == ["Layer", "Background"]
    assert window.doc.active.name == "Layer" and panel.list.currentRow() == 0

    rect = panel.list.visualItemRect(panel.list.item(0))
    # A real double-click is press, release, then a double-click event; QTest's mouseDClick is only the last.
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: len(panel.list.findChildren(QLineEdit)) == 1)
    qtbot.wait(20)  # let the editor settle, as it would between a user's keystrokes
    editor = panel.list.findChildren(QLineEdit)[0]
    editor.selectAll()
    qtbot.keyClicks(editor, "Clouds")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.doc.layers[-1].name != "Layer")  # the delegate commits from a queued call
    assert window.doc.layers[-1].name == "Clouds" and _names(window) == ["Clouds", "Background"]

    panel.list.item(1).setCheckState(Qt.CheckState.Unchecked)
    assert not window.doc.layers[0].visible
    window.doc.history.undo()
    assert window.doc.layers[0].visible and panel.list.item(1).checkState() == Qt.CheckState.Checked

    panel.list.setCurrentRow(1)
    assert window.doc.active.name == "Background"
    qtbot.mouseClick(panel.up_button, Qt.MouseButton.LeftButton)
    assert _names(window) == ["Background", "Clouds"] and panel.list.currentRow() == 0
    qtbot.mouseClick(panel.duplicate_button, Qt.MouseButton.LeftButton)
    assert _names(window) == ["Background copy", "Background", "Clouds"]
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(panel.delete_button, Qt.MouseButton.LeftButton)
    assert _names(window) == ["Clouds"]


def test_an_empty_name_is_refused_and_the_old_name_comes_back(window: MainWindow, png_path: Path) -> None:
    window.open_path(png_path)
    window.layers_panel.list.item(0).setText("   ")
    assert window.doc.layers[0].name == "Background" and _names(window) == ["Background"]
    assert "empty" in (window.last_error or "")


def test_blend_mode_and_opacity_of_the_active_layer(window: MainWindow, png_path: Path) -> None:
    window.open_path(png_path)
    panel = window.layers_panel
    panel.opacity_slider.setValue(40)
    assert window.doc.active.opacity == 0.4 and panel.opacity_label.text() == "40%"
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("multiply"))
    panel.mode_combo.activated.emit(panel.mode_combo.currentIndex())
    assert window.doc.active.blend_mode.value == "multiply"
    window.doc.history.undo()
    window.doc.history.undo()
    assert panel.opacity_slider.value() == 100 and panel.mode_combo.currentData() == "normal"


def test_clicking_a_history_step_goes_back_to_it(window: MainWindow, png_path: Path, qtbot, mouse) -> None:
    window.open_path(png_path)
    original = window.doc.composite()
    mouse.drag(window, [(10, 10), (40, 10)])
    after_first = window.doc.composite()
    window.doc.add_layer()
    mouse.drag(window, [(10, 40), (40, 40)])
    lst = window.history_panel.list
    assert [lst.item(i).text() for i in range(lst.count())] == [
        "Opened",
        "Brush stroke on Background",
        "Add Layer",
        "Brush stroke on Layer",
    ]
    assert lst.currentRow() == 3

    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=lst.visualItemRect(lst.item(1)).center())
    assert window.doc.history.index == 1 and len(window.doc.layers) == 1
    assert np.array_equal(window.doc.composite(), after_first)
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=lst.visualItemRect(lst.item(0)).center())
    assert np.array_equal(window.doc.composite(), original) and window.windowTitle() == "DiffEdit — sunset"
    assert lst.count() == 4  # undone steps stay listed for redo
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=lst.visualItemRect(lst.item(3)).center())
    assert window.doc.history.index == 3 and len(window.doc.layers) == 2
