"""The canvas rulers: image-pixel ticks that follow zoom and pan, a pointer marker, and the View toggle."""

from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from diffedit.qt.main_window import MainWindow
from diffedit.qt.rulers import THICKNESS, Ruler, label_step, minor_step
from diffedit.settings import Settings


def _check_mapping(window: MainWindow) -> None:
    """Both rulers put a document coordinate exactly where the canvas shows it, measured in the window."""
    canvas, top, left = window.canvas, window.canvas_area.top_ruler, window.canvas_area.left_ruler
    for x, y in ((0, 0), (13, 7), (96, 64), (-20, 150)):
        on_canvas = canvas.mapTo(window, canvas.doc_to_widget(x, y))
        assert top.mapTo(window, QPointF(top.doc_to_ruler(x), 0)).x() == pytest.approx(on_canvas.x())
        assert left.mapTo(window, QPointF(0, left.doc_to_ruler(y))).y() == pytest.approx(on_canvas.y())
        assert top.ruler_to_doc(top.doc_to_ruler(x)) == pytest.approx(x)
        assert left.ruler_to_doc(left.doc_to_ruler(y)) == pytest.approx(y)


def test_label_steps_are_one_two_five_times_a_power_of_ten_and_follow_the_zoom() -> None:
    assert [label_step(z) for z in (64, 16, 4, 1, 0.5, 1 / 8, 1 / 32)] == [1, 5, 20, 100, 200, 500, 2000]
    for zoom in (1 / 32, 1 / 3, 1, 1.5, 6, 64):
        step = label_step(zoom)
        assert str(step)[0] in "125" and set(str(step)[1:]) <= {"0"}
        assert step * zoom >= 56 and (step == 1 or label_step(zoom * 1.01) <= step)
    assert minor_step(100, 1.0) == 10 and minor_step(1, 64) is None and minor_step(5, 16) == 1


def test_the_rulers_sit_along_the_canvas_and_follow_zoom_and_pan(window: MainWindow, png_path: Path, qtbot,
                                                                  mouse) -> None:
    window.open_path(png_path)
    canvas, top, left = window.canvas, window.canvas_area.top_ruler, window.canvas_area.left_ruler
    assert top.isVisible() and left.isVisible() and top.height() == left.width() == THICKNESS
    assert top.mapTo(window, QPoint(0, 0)).x() == canvas.mapTo(window, QPoint(0, 0)).x()
    assert left.mapTo(window, QPoint(0, 0)).y() == canvas.mapTo(window, QPoint(0, 0)).y()
    _check_mapping(window)

    repaints: list[int] = []
    canvas.view_changed.connect(lambda: repaints.append(1))
    canvas.zoom_in()
    canvas.zoom_in()
    assert canvas.zoom == 2.0 and repaints
    _check_mapping(window)
    # the wheel zooms about the pointer
    before = len(repaints)
    pos = QPointF(canvas.width() / 3, canvas.height() / 3)
    event = QWheelEvent(pos, canvas.mapToGlobal(pos), QPoint(), QPoint(0, 120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    canvas.wheelEvent(event)
    assert canvas.zoom == pytest.approx(2.4) and len(repaints) > before
    _check_mapping(window)
    # space + drag pans: the ruler's 0 moves with the image
    zero = top.doc_to_ruler(0), left.doc_to_ruler(0)
    before = len(repaints)
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    mouse.drag(window, [(10, 10), (20, 15)])
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert len(repaints) > before
    assert top.doc_to_ruler(0) == pytest.approx(zero[0] + 24, abs=1)  # 10 document px at 240%
    assert left.doc_to_ruler(0) == pytest.approx(zero[1] + 12, abs=1)
    _check_mapping(window)
    canvas.fit()
    _check_mapping(window)
    top.repaint()  # paints at every zoom without error
    left.repaint()


def test_the_marker_follows_the_pointer_over_the_canvas(window: MainWindow, png_path: Path, qtbot) -> None:
    window.open_path(png_path)
    canvas, top, left = window.canvas, window.canvas_area.top_ruler, window.canvas_area.left_ruler
    assert top.marker_position() is None and left.marker_position() is None
    for x, y in ((10, 20), (50, 5)):
        pos = canvas.doc_to_widget(x + 0.5, y + 0.5).toPoint()
        # a real move event (QTest's mouseMove moves the cursor, which offscreen Qt does not always
        # turn into an event when another window was on top before)
        move = QMouseEvent(QEvent.Type.MouseMove, QPointF(pos), QPointF(canvas.mapToGlobal(pos)),
                           Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(canvas, move)
        assert top.marker == pytest.approx(canvas.widget_to_doc(QPointF(pos))[0])
        assert left.marker == pytest.approx(canvas.widget_to_doc(QPointF(pos))[1])
        assert top.mapTo(window, QPointF(top.marker_position(), 0)).x() == pytest.approx(canvas.mapTo(window, pos).x())
        assert left.mapTo(window, QPointF(0, left.marker_position())).y() == pytest.approx(
            canvas.mapTo(window, pos).y())
    top.repaint()
    canvas.leaveEvent(QEvent(QEvent.Type.Leave))
    assert top.marker is None and left.marker is None


def test_show_rulers_toggles_and_is_remembered(window: MainWindow, png_path: Path, qtbot) -> None:
    window.open_path(png_path)
    area = window.canvas_area
    action = window.rulers_action
    assert action.isChecked() and action.shortcut().toString() == "Ctrl+R"
    assert action in window.menuBar().actions()[4].menu().actions()  # View
    width = window.canvas.width()
    action.trigger()
    assert not area.rulers_shown and not area.top_ruler.isVisible() and not area.left_ruler.isVisible()
    qtbot.waitUntil(lambda: window.canvas.width() == width + THICKNESS)  # the canvas takes the space
    assert Settings.load().show_rulers is False
    second = MainWindow()
    qtbot.addWidget(second)
    assert not second.rulers_action.isChecked() and not second.canvas_area.rulers_shown
    action.trigger()
    assert area.rulers_shown and area.top_ruler.isVisible() and Settings.load().show_rulers is True


def test_a_ruler_without_a_document_is_blank(window: MainWindow, qtbot) -> None:
    ruler = Ruler(window.canvas, Qt.Orientation.Vertical)
    qtbot.addWidget(ruler)
    ruler.resize(THICKNESS, 200)
    ruler.show()
    ruler.repaint()
    assert ruler.marker_position() is None
