"""Start page (samples, recent files), Open Recent, Import as Layer, autosave and crash recovery."""

import os
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from diffedit.document.autosave import Autosaver, find_recovery_files
from diffedit.document.document import Document
from diffedit.qt.main_window import MainWindow
from diffedit.qt.session import AutosaveTimer, RecentFiles, sample_images


def test_sample_images_are_bundled_small_and_licensed() -> None:
    samples = sample_images()
    assert len(samples) >= 2
    for p in samples:
        with Image.open(p) as im:
            assert max(im.size) <= 512
    readme = (samples[0].parent / "README.md").read_text()
    assert all(p.name in readme for p in samples) and "CC0" in readme


def test_a_sample_button_opens_the_sample(window: MainWindow, qtbot) -> None:
    buttons = window.start_page.sample_buttons
    assert buttons and all(b.isVisible() for b in buttons)
    qtbot.mouseClick(buttons[0], Qt.MouseButton.LeftButton)
    assert window.doc is not None and window.doc.name == sample_images()[0].stem
    assert window.stack.currentWidget() is window.canvas_area


def test_recent_files_are_listed_on_the_start_page_and_in_the_menu(window: MainWindow, png_path: Path,
                                                                   tmp_path: Path, qtbot) -> None:
    assert not window.start_page.recent_list.isVisible()
    window.open_path(png_path)
    window.save_as(tmp_path / "work.ora")
    assert RecentFiles().paths() == [str((tmp_path / "work.ora").resolve()), str(png_path.resolve())]
    titles = [a.text() for a in window.recent_menu.actions()]
    assert titles[:2] == ["&1 work.ora", "&2 sunset.png"]
    window.set_document(None)
    assert window.start_page.recent_list.isVisible() and window.start_page.recent_list.count() == 2
    item = window.start_page.recent_list.item(1)
    rect = window.start_page.recent_list.visualItemRect(item)
    qtbot.mouseClick(window.start_page.recent_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.doc is not None and window.doc.name == "sunset"
    window.recent_menu.actions()[1].trigger()  # sunset is now first; the .ora second
    assert window.doc.path == str((tmp_path / "work.ora").resolve())
    os.remove(tmp_path / "work.ora")  # a vanished file drops out of the list
    assert RecentFiles().paths() == [str(png_path.resolve())]


def test_import_as_layer_adds_one_undoable_layer(window: MainWindow, png_path: Path, tmp_path: Path) -> None:
    window.new_document(40, 30)
    assert window.import_layer(png_path)
    doc = window.doc
    assert [la.name for la in doc.layers] == ["Background", "sunset"] and doc.history.steps == ["Import sunset"]
    assert "larger than" in window.statusBar().currentMessage()
    window.undo()
    assert [la.name for la in doc.layers] == ["Background"]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert not window.import_layer(bad) and window.last_error


def test_autosave_timer_writes_and_a_clean_save_discards(window: MainWindow, png_path: Path, tmp_path: Path) -> None:
    window.open_path(png_path)
    autosaver = window.autosave.autosaver
    assert autosaver is not None and autosaver.doc is window.doc
    assert window.autosave.timer.isActive()
    window.doc.add_layer()
    autosaver.interval = 0
    assert window.autosave.tick() == autosaver.path and autosaver.path.exists()
    window.save_as(tmp_path / "saved.ora")
    assert not autosaver.path.exists()
    window.doc.add_layer()
    window.autosave.tick()
    assert autosaver.path.exists()
    window.set_document(None)  # closing (after the user discarded) removes it too
    assert not autosaver.path.exists() and find_recovery_files() == []


def test_autosave_interval_zero_stops_the_timer(qtbot) -> None:
    timer = AutosaveTimer()
    timer.set_interval(0)
    assert not timer.timer.isActive()
    timer.set_interval(60)
    assert timer.timer.isActive() and timer.timer.interval() == 15000


def test_recovery_files_from_a_crash_are_offered_and_open_as_unsaved(window: MainWindow, qtbot) -> None:
    crashed = Document(20, 10, name="lost work")
    crashed.add_raster(np.full((10, 20, 4), 200, np.uint8), "Paint")
    saver = Autosaver(crashed, interval=0)
    saver.write_now()
    other = Autosaver(crashed, interval=0)
    other.write_now()
    dialog = window.offer_recovery()
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    assert dialog.list.count() == 2
    dialog.list.setCurrentRow(0)
    qtbot.mouseClick(dialog.discard_button, Qt.MouseButton.LeftButton)
    assert dialog.list.count() == 1 and len(find_recovery_files()) == 1
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert window.doc is not None and window.doc.name == "lost work" and window.doc.modified
    assert window.doc.layers[0].surface.to_array()[0, 0, 0] == 200
    assert window.doc.path is None and not dialog.isVisible()
    assert find_recovery_files() == []
    assert window.offer_recovery() is None  # nothing left: no dialog
