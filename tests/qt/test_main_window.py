"""The window as a user meets it: start page, opening files, errors, saving and exporting."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from diffedit.document import masks
from diffedit.document.geometry import Rect
from diffedit.qt.bindings import qimage_to_rgba
from diffedit.qt.dialogs import NewDocumentDialog
from diffedit.qt.main_window import MainWindow


def test_without_a_file_the_start_page_offers_new_and_open(window: MainWindow, qtbot) -> None:
    assert window.windowTitle() == "DiffEdit"
    assert window.stack.currentWidget() is window.start_page
    assert window.start_page.new_button.isVisible() and window.start_page.open_button.isVisible()
    assert not window.undo_action.isEnabled()

    def accept_dialog() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, NewDocumentDialog)
        dialog.width_spin.setValue(40)
        dialog.height_spin.setValue(30)
        dialog.accept()

    QTimer.singleShot(0, accept_dialog)
    qtbot.mouseClick(window.start_page.new_button, Qt.MouseButton.LeftButton)
    assert window.doc is not None and (window.doc.width, window.doc.height) == (40, 30)
    assert window.stack.currentWidget() is window.canvas_area
    assert window.windowTitle() == "DiffEdit — Untitled"
    assert (window.doc.composite() == 255).all()  # white background, and nothing to undo
    assert window.doc.history.steps == []


def test_opening_a_png_shows_it_with_its_name_in_the_title(window: MainWindow, png_path: Path) -> None:
    assert window.open_path(png_path)
    assert window.windowTitle() == "DiffEdit — sunset"
    assert "sunset.png" in window.statusBar().currentMessage()
    expected = np.asarray(Image.open(png_path).convert("RGBA"))
    assert np.array_equal(qimage_to_rgba(window.canvas.display_image()), expected)
    assert [window.layers_panel.list.item(i).text() for i in range(window.layers_panel.list.count())] == ["Background"]


def test_open_shows_the_notes_of_the_file(window: MainWindow, tmp_path: Path) -> None:
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 8), 99, np.uint8), "L").save(grey)
    window.open_path(grey)
    assert "greyscale" in window.statusBar().currentMessage()


def test_a_broken_file_shows_an_error_and_keeps_the_document(
    window: MainWindow, png_path: Path, tmp_path: Path, qtbot
) -> None:
    window.open_path(png_path)
    doc, before = window.doc, window.doc.composite()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with qtbot.waitSignal(window.error_shown) as blocker:
        assert not window.open_path(broken)
    assert "broken.png" in blocker.args[1]
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "broken.png" in boxes[0].text()
    assert window.doc is doc and np.array_equal(doc.composite(), before)
    assert window.windowTitle() == "DiffEdit — sunset"
    assert not window.open_path(tmp_path / "missing.ora")  # a damaged .ora goes the same way
    assert window.doc is doc


def test_save_as_ora_then_reopen_keeps_layers_and_pixels(
    window: MainWindow, png_path: Path, tmp_path: Path, qtbot, mouse
) -> None:
    window.open_path(png_path)
    mouse.drag(window, [(10, 10), (50, 30)])
    window.doc.add_layer(name="Sketch")
    window.tools.set_tool("mask")
    mouse.drag(window, [(60, 40), (80, 50)])
    assert window.windowTitle().endswith("*")
    target = tmp_path / "project.ora"
    assert window.save_as(target) and target.exists()
    assert window.windowTitle() == "DiffEdit — project"
    other = MainWindow()
    qtbot.addWidget(other)
    assert other.open_path(target)
    assert [la.name for la in other.doc.layers] == [la.name for la in window.doc.layers]
    assert np.array_equal(other.doc.composite(), window.doc.composite())
    mask = other.doc.inpaint_mask
    assert mask is not None and np.array_equal(mask.surface.to_array(), window.doc.inpaint_mask.surface.to_array())


def test_save_on_a_png_asks_for_an_ora_name_and_export_writes_the_image(
    window: MainWindow, png_path: Path, tmp_path: Path, monkeypatch
) -> None:
    window.open_path(png_path)
    asked = []
    monkeypatch.setattr(window, "save_as_dialog", lambda: asked.append(True) or False)
    window.save()
    assert asked and not png_path.with_suffix(".ora").exists()
    out = tmp_path / "flat.webp"
    assert window.export(tmp_path / "flat.png") and window.export(out) and out.exists()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "flat.png")), window.doc.composite())
    assert not window.export(tmp_path / "flat.gif")
    assert ".png" in (window.last_error or "")


def test_layer_and_selection_menus_act_on_the_document(window: MainWindow, png_path: Path) -> None:
    window.open_path(png_path)
    actions = {a.text().replace("&", ""): a for a in window.findChildren(type(window.undo_action))}
    actions["New Layer"].trigger()
    assert len(window.doc.layers) == 2
    actions["All"].trigger()
    assert window.doc.has_selection
    masks.select_rectangle(window.doc, Rect(10, 10, 76, 44))
    assert window.transform_selection("shrink", 5)
    assert window.doc.selection_array()[12, 12] == 0 and window.doc.selection_array()[32, 48] == 255
    actions["Fill with Brush Colour"].trigger()
    top = window.doc.layers[-1].surface.to_array()
    assert top[32, 48, 3] == 255 and top[12, 12, 3] == 0
    actions["Merge Down"].trigger()
    assert len(window.doc.layers) == 1
    actions["Invert"].trigger()
    actions["Clear"].trigger()
    assert window.doc.composite()[12, 12, 3] == 0 and window.doc.composite()[32, 48, 3] == 255
    actions["Delete Layer"].trigger()
    actions["Delete Layer"].trigger()  # nothing left to delete: an error box, not a crash
    assert window.doc.layers == [] and "no active layer" in (window.last_error or "")


RUN_EDITOR_SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from diffedit.qt.app import run_editor
from diffedit.qt.main_window import MainWindow

app = QApplication(sys.argv[:1])  # run_editor uses it, and the timer below needs it first

def look_and_quit():
    for w in QApplication.topLevelWidgets():
        if isinstance(w, MainWindow) and w.isVisible():
            print("TITLE", w.windowTitle(), "|", w.statusBar().currentMessage(), "|", w.last_error, flush=True)
            w.close()

QTimer.singleShot(300, look_and_quit)
sys.exit(run_editor(sys.argv[1:]))
"""


def test_run_editor_opens_each_file_in_a_window_and_exits_when_they_close(png_path: Path, tmp_path: Path) -> None:
    # In a child process: a finished QApplication.exec() leaves Qt unfit for the tests that follow.
    broken = tmp_path / "broken.ora"
    broken.write_bytes(b"not a zip")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", RUN_EDITOR_SCRIPT, str(png_path), str(broken)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr
    titles = sorted(line for line in out.stdout.splitlines() if line.startswith("TITLE"))
    assert len(titles) == 2
    assert titles[0].startswith("TITLE DiffEdit |") and "broken.ora" in titles[0]  # start page + the error
    assert titles[1].startswith("TITLE DiffEdit — sunset |") and "sunset.png" in titles[1]
