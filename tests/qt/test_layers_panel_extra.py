"""The Layers dock's drag and drop reordering, lock toggle and lazy thumbnails, each one undo step."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QDropEvent

from diffedit.document.geometry import Rect
from diffedit.qt import layers_panel as panel_module
from diffedit.qt.layer_widgets import ITEM_MODEL_MIME, LayerDelegate, sample_layer
from diffedit.qt.main_window import MainWindow
from diffedit.qt.tools import Tool


def _names(window: MainWindow) -> list[str]:
    lst = window.layers_panel.list
    return [lst.item(i).text() for i in range(lst.count())]


def _three_layers(window: MainWindow, png_path: Path) -> None:
    window.open_path(png_path)
    window.doc.add_layer()
    window.doc.add_layer()
    assert _names(window) == ["Layer 2", "Layer", "Background"]


def _drop(window: MainWindow, source_row: int, pos: QPoint) -> None:
    """What the view receives when a row dragged from itself is released at `pos` (viewport coordinates).

    The offscreen platform runs no drag loop, so the press-move-release of a real drag cannot reach the
    drop; the drop event is built as Qt builds it, with the view's own mime data for the dragged row.
    (`test_a_real_mouse_drag_reorders_the_layers_under_x` drives a real drag where an X server is at hand.)
    """
    lst = window.layers_panel.list
    lst.setCurrentRow(source_row)
    mime: QMimeData = lst.model().mimeData([lst.model().index(source_row, 0)])
    assert mime.hasFormat(ITEM_MODEL_MIME)
    event = QDropEvent(
        QPointF(pos), Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    lst.dropEvent(event)  # Qt's delivery path of a drop ends here, at the view's handler


def test_dropping_the_top_row_below_the_bottom_one_is_one_undo_step(window: MainWindow, png_path: Path) -> None:
    _three_layers(window, png_path)
    lst, doc = window.layers_panel.list, window.doc
    steps = len(doc.history.steps)
    bottom = lst.visualItemRect(lst.item(2))
    _drop(window, 0, bottom.center() + QPoint(0, bottom.height() // 4))  # lower half: below it
    assert _names(window) == ["Layer", "Background", "Layer 2"]
    assert [la.name for la in doc.layers] == ["Layer 2", "Background", "Layer"]  # bottom first
    assert len(doc.history.steps) == steps + 1 and doc.history.steps[-1] == "Move Layer 2"
    doc.history.undo()
    assert _names(window) == ["Layer 2", "Layer", "Background"]
    doc.history.redo()
    assert _names(window) == ["Layer", "Background", "Layer 2"]


def test_dropping_on_the_upper_half_of_a_row_puts_the_layer_above_it(window: MainWindow, png_path: Path) -> None:
    _three_layers(window, png_path)
    lst = window.layers_panel.list
    top = lst.visualItemRect(lst.item(0))
    _drop(window, 2, top.center() - QPoint(0, top.height() // 4))
    assert _names(window) == ["Background", "Layer 2", "Layer"]
    # The dragged row became the current one (as a press does), and stays so in its new place.
    assert window.doc.active.name == "Background" and lst.currentRow() == 0
    steps = len(window.doc.history.steps)
    _drop(window, 0, top.center() - QPoint(0, top.height() // 4))  # onto itself: nothing happens
    assert _names(window) == ["Background", "Layer 2", "Layer"] and len(window.doc.history.steps) == steps


def test_a_drop_below_the_last_row_moves_to_the_bottom(window: MainWindow, png_path: Path) -> None:
    _three_layers(window, png_path)
    lst = window.layers_panel.list
    below = lst.visualItemRect(lst.item(2)).bottomLeft() + QPoint(10, 20)
    assert not lst.indexAt(below).isValid()
    _drop(window, 1, below)
    assert _names(window) == ["Layer 2", "Background", "Layer"]


def test_a_press_and_drag_on_a_row_starts_a_drag_of_that_row(window: MainWindow, png_path: Path, qtbot,
                                                             monkeypatch) -> None:
    _three_layers(window, png_path)
    lst = window.layers_panel.list
    started: list[int] = []
    monkeypatch.setattr(lst, "startDrag", lambda actions: started.append(lst.currentRow()))
    start = lst.visualItemRect(lst.item(1)).center()
    qtbot.mousePress(lst.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for dy in (5, 15, 30):
        qtbot.mouseMove(lst.viewport(), start + QPoint(0, dy))
    qtbot.mouseRelease(lst.viewport(), Qt.MouseButton.LeftButton, pos=start + QPoint(0, 30))
    assert started == [1]


# A real drag, run under X (xcb) in a child process: the offscreen platform's QDrag.exec() returns at
# once without a drop, while xcb runs Qt's own drag loop, which takes QTest's moves and release (sent
# from a timer, as the loop blocks) and delivers the drop to the list through Qt's event path.
REAL_DRAG = textwrap.dedent("""
    import json, sys
    from PySide6.QtCore import QPoint, Qt, QTimer
    from PySide6.QtGui import QImage
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from diffedit.qt.main_window import MainWindow

    app = QApplication(["diffedit"])
    image = QImage(64, 48, QImage.Format.Format_RGB32)
    image.fill(0x336699)
    image.save(sys.argv[1])
    win = MainWindow()
    win.maybe_discard = lambda: True
    win.show()
    QTest.qWaitForWindowExposed(win)
    win.open_path(sys.argv[1])
    win.doc.add_layer()
    win.doc.add_layer()
    lst = win.layers_panel.list
    names = lambda: [lst.item(i).text() for i in range(lst.count())]
    before, steps = names(), len(win.doc.history.steps)
    view = lst.viewport()
    start = lst.visualItemRect(lst.item(0)).center()
    bottom = lst.visualItemRect(lst.item(2))
    end = bottom.center() + QPoint(0, bottom.height() // 4)  # lower half of the bottom row: below it
    in_loop = []

    def inside_the_drag_loop():
        in_loop.append(True)
        for dy in range(0, end.y() - start.y(), 4):
            QTest.mouseMove(view, start + QPoint(0, dy))
        QTest.mouseMove(view, end)
        QTest.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)

    QTimer.singleShot(100, inside_the_drag_loop)
    QTest.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    for dy in (4, 12, 24):  # past the drag distance: the view starts a QDrag and blocks in its loop
        QTest.mouseMove(view, start + QPoint(0, dy))
    QTest.qWait(50)
    result = {"before": before, "after": names(), "in_loop": in_loop, "new_steps": win.doc.history.steps[steps:]}
    win.doc.history.undo()
    result["undone"] = names()
    win.close()
    print("RESULT " + json.dumps(result), flush=True)
""")


def test_a_real_mouse_drag_reorders_the_layers_under_x(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DIFFEDIT_CONFIG_DIR": str(tmp_path / "config"),
           "DIFFEDIT_RECOVERY_DIR": str(tmp_path / "recovery")}
    xvfb = None
    if shutil.which("Xvfb"):  # a private X server, never the user's screen
        read, write = os.pipe()
        xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                                pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as display:
            number = display.readline().strip()
        if not number:
            xvfb.kill()
            pytest.skip("Xvfb did not start")
        env["DISPLAY"] = f":{number}"
    elif not os.environ.get("DISPLAY"):
        pytest.skip("a real drag needs an X server (Xvfb), and the offscreen platform runs no drag loop")
    try:
        proc = subprocess.run([sys.executable, "-c", REAL_DRAG, str(tmp_path / "blue.png")], env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(timeout=10)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines and "platform plugin" in proc.stderr and "xcb" in proc.stderr:
        pytest.skip("Qt's xcb platform plugin cannot load here")
    assert lines, proc.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["in_loop"] == [True]  # the release came from inside Qt's drag loop
    assert result["before"] == ["Layer 2", "Layer", "Background"]
    assert result["after"] == ["Layer", "Background", "Layer 2"]
    assert result["new_steps"] == ["Move Layer 2"]
    assert result["undone"] == result["before"]


def test_clicking_the_padlock_locks_and_unlocks_one_undo_step_each(window: MainWindow, png_path: Path, qtbot,
                                                                  mouse) -> None:
    _three_layers(window, png_path)
    lst, doc = window.layers_panel.list, window.doc
    layer = doc.layers[0]  # Background, the bottom row
    lock = LayerDelegate.lock_rect(lst.visualItemRect(lst.item(2))).center()
    steps = len(doc.history.steps)
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=lock)
    assert layer.locked and len(doc.history.steps) == steps + 1
    assert lst.item(2).checkState() == Qt.CheckState.Checked  # the padlock is not the visibility box
    assert "locked" in lst.item(2).toolTip()
    # A locked layer refuses paint: the stroke changes nothing and the window says why.
    doc.set_active(layer)
    before = layer.surface.to_array().copy()
    window.tools.set_tool(Tool.BRUSH)
    mouse.drag(window, [(10, 10), (40, 30)])
    assert np.array_equal(layer.surface.to_array(), before)
    assert "locked" in window.statusBar().currentMessage()
    doc.history.undo()
    assert not layer.locked and lst.item(2).data(panel_module.LOCK_ROLE) is False
    doc.history.redo()
    assert layer.locked
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=lock)
    assert not layer.locked and len(doc.history.steps) == steps + 2


def test_thumbnails_follow_paint_lazily_and_only_for_the_changed_layer(window: MainWindow, png_path: Path,
                                                                       qtbot, mouse, monkeypatch) -> None:
    window.open_path(png_path)
    panel, doc = window.layers_panel, window.doc
    layer = doc.add_layer()
    assert panel.list.iconSize().width() == 32 and not panel.list.item(0).icon().isNull()
    thumbs = sample_layer(layer, 32)
    assert thumbs.shape == (21, 32, 4) and not thumbs[..., 3].any()  # 96x64 at most 32 px, empty layer
    composites: list[Rect] = []
    original = doc.composite
    monkeypatch.setattr(doc, "composite", lambda rect=None: composites.append(rect) or original(rect))
    made = panel.thumbnails.made
    window.tools.set_tool(Tool.BRUSH)
    window.tools.set_color(QColor(255, 0, 0))
    mouse.drag(window, [(10.0 + i, 20.0) for i in range(40)])
    assert panel.thumbnails.made == made  # nothing redrawn per dab
    assert panel.thumb_timer.isActive()
    before = len(composites)
    qtbot.waitUntil(lambda: panel.thumbnails.made == made + 1, timeout=2000)  # one redraw, this layer only
    assert len(composites) == before  # a thumbnail reads its own layer's tiles, never the composite
    red = sample_layer(layer, 32)
    assert red[..., 3].any() and red[red[..., 3] > 0][:, 0].min() == 255
    image = panel.list.item(0).icon().pixmap(32, 32).toImage()
    reds = [image.pixelColor(x, y).red() > 200 and image.pixelColor(x, y).green() < 80
            for x in range(32) for y in range(32)]
    assert any(reds)
    doc.history.undo()  # undo is a pixel change too: the thumbnail empties again
    qtbot.waitUntil(lambda: panel.thumbnails.made == made + 2, timeout=2000)


def test_thumbnail_throttle_interval(window: MainWindow) -> None:
    assert panel_module.THUMB_INTERVAL_MS <= 300
    assert window.layers_panel.thumb_timer.interval() == panel_module.THUMB_INTERVAL_MS
    assert window.layers_panel.thumb_timer.isSingleShot()
