"""Painting, masking and viewing on the canvas with real mouse and key events."""

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from diffedit.qt.bindings import qimage_to_rgba
from diffedit.qt.main_window import MainWindow
from diffedit.qt.tools import Tool


def test_a_stroke_paints_the_active_layer_and_one_undo_restores_it(
    window: MainWindow, png_path: Path, qtbot, mouse
) -> None:
    window.open_path(png_path)
    layer = window.doc.active
    before = layer.surface.to_array()
    shown_before = qimage_to_rgba(window.canvas.display_image())
    mouse.drag(window, [(10, 10), (30, 20), (60, 40)])
    after = layer.surface.to_array()
    assert not np.array_equal(before, after)
    assert tuple(after[20, 30]) == (20, 20, 20, 255)  # the brush colour on the stroke's path
    assert np.array_equal(after[60:, :5], before[60:, :5])  # far from the stroke: untouched
    assert np.array_equal(qimage_to_rgba(window.canvas.display_image()), window.doc.composite())
    assert window.doc.history.steps == ["Brush stroke on Background"]
    assert window.windowTitle() == "DiffEdit — sunset*"

    window.activateWindow()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(layer.surface.to_array(), before)
    assert np.array_equal(qimage_to_rgba(window.canvas.display_image()), shown_before)
    assert window.windowTitle() == "DiffEdit — sunset"
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(layer.surface.to_array(), after)


def test_the_eraser_makes_pixels_transparent(window: MainWindow, png_path: Path, qtbot, mouse) -> None:
    window.open_path(png_path)
    qtbot.keyClick(window.canvas, Qt.Key.Key_E)
    assert window.tools.tool is Tool.ERASER
    mouse.drag(window, [(20, 20), (40, 20)])
    assert window.doc.active.surface.to_array()[20, 30, 3] == 0
    assert window.canvas.display_image().pixelColor(30, 20).alpha() == 0


def test_the_mask_brush_paints_the_inpainting_mask_and_alt_removes_it(
    window: MainWindow, png_path: Path, qtbot, mouse
) -> None:
    window.open_path(png_path)
    raster = window.doc.active
    pixels = raster.surface.to_array()
    qtbot.keyClick(window.canvas, Qt.Key.Key_M)
    assert window.tools.tool is Tool.MASK
    mouse.drag(window, [(20, 30), (70, 30)])
    mask = window.doc.inpaint_mask
    assert mask is not None and mask.surface.to_array()[30, 45, 0] == 255
    assert window.doc.active is raster and np.array_equal(raster.surface.to_array(), pixels)
    tint = window.canvas.overlay_image().pixelColor(45, 30)
    assert tint.alpha() > 0 and tint.red() > tint.blue()  # tinted with the mask's colour
    mouse.drag(window, [(40, 30), (50, 30)], Qt.KeyboardModifier.AltModifier)
    assert mask.surface.to_array()[30, 45, 0] == 0 and mask.surface.to_array()[30, 25, 0] == 255
    window.mask_action.trigger()  # hide the overlay; the mask itself stays
    assert not window.canvas.mask_shown and window.canvas.overlay_image().pixelColor(25, 30).alpha() == 0
    assert mask.surface.to_array()[30, 25, 0] == 255


def test_brush_size_keys_and_the_options_bar_agree(window: MainWindow, png_path: Path, qtbot) -> None:
    window.open_path(png_path)
    size = window.tools.settings.size
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketRight)
    assert window.tools.settings.size > size
    bar = window.findChild(type(window.addToolBar("x")).__mro__[0].__base__, "tool-options")  # ToolOptionsBar
    assert bar.size_spin.value() == round(window.tools.settings.size)
    bar.size_spin.setValue(5)
    assert window.tools.settings.size == 5
    qtbot.keyClick(window.canvas, Qt.Key.Key_BracketLeft)
    assert window.tools.settings.size == 4


def test_zoom_keys_wheel_and_middle_button_pan(window: MainWindow, png_path: Path, qtbot, mouse) -> None:
    window.open_path(png_path)
    canvas = window.canvas
    assert canvas.zoom == 1.0  # a small image opens at 100%, not blown up
    qtbot.keyClick(canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == 1.5
    qtbot.keyClick(canvas, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom == 1.0
    doc_point = canvas.widget_to_doc(mouse.point(window, 30, 20).toPointF())
    start = mouse.point(window, 30, 20)
    qtbot.mousePress(canvas, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(canvas, start + QPoint(40, 25))
    qtbot.mouseRelease(canvas, Qt.MouseButton.MiddleButton, pos=start + QPoint(40, 25))
    assert canvas.widget_to_doc((start + QPoint(40, 25)).toPointF()) == doc_point

    origin = QPointF(canvas.origin)
    qtbot.keyPress(canvas, Qt.Key.Key_Space)  # space + left drag pans too
    mouse.drag(window, [(30, 20), (10, 5)])
    assert canvas.origin - origin == QPointF(-20, -15)
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert window.doc.history.steps == []  # panning never paints

    anchor = QPointF(mouse.point(window, 20, 20))
    under = canvas.widget_to_doc(anchor)
    wheel = QWheelEvent(
        anchor,
        canvas.mapToGlobal(anchor),
        QPoint(),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, wheel)
    assert canvas.zoom == pytest.approx(1.2)
    assert canvas.widget_to_doc(anchor) == pytest.approx(under)  # zooms about the pointer
    qtbot.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom > 5  # fit fills the window


def test_painting_a_locked_layer_says_why_in_the_status_bar(window: MainWindow, png_path: Path, qtbot, mouse) -> None:
    window.open_path(png_path)
    window.doc.set_property(window.doc.active, "locked", True)
    mouse.drag(window, [(10, 10), (20, 20)])
    assert "locked" in window.statusBar().currentMessage()
    assert window.doc.history.steps == ["Change locked of Background"]


def test_cursor_position_readout(window: MainWindow, png_path: Path, qtbot, mouse) -> None:
    window.open_path(png_path)
    qtbot.mouseMove(window.canvas, mouse.point(window, 12.3, 7.3))
    assert window.position_label.text() == "12, 7 px"


def test_the_first_mask_stroke_and_the_mask_it_creates_undo_together(window, png_path, mouse) -> None:
    window.open_path(png_path)
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.keyClick(window.canvas, Qt.Key.Key_M)
    mouse.drag(window, [(10, 10), (40, 10)])
    assert window.doc.inpaint_mask is not None
    window.doc.history.undo()
    assert window.doc.inpaint_mask is None and len(window.doc.layers) == 1


def _tablet_stroke(window: MainWindow, points: list[tuple[float, float]], pressure: float) -> None:
    """A pen stroke through Qt's tablet events (as a graphics tablet's driver delivers them)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QInputDevice, QPointingDevice, QTabletEvent

    pen = QPointingDevice("test pen", 7, QInputDevice.DeviceType.Stylus, QPointingDevice.PointerType.Pen,
                          QInputDevice.Capability.Position | QInputDevice.Capability.Pressure, 1, 3)
    canvas = window.canvas
    kinds = [QEvent.Type.TabletPress] + [QEvent.Type.TabletMove] * (len(points) - 2) + [QEvent.Type.TabletRelease]
    for kind, (x, y) in zip(kinds, points, strict=True):
        pos = QPointF(canvas.doc_to_widget(x, y))
        button = Qt.MouseButton.LeftButton if kind != QEvent.Type.TabletMove else Qt.MouseButton.NoButton
        buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.TabletRelease else Qt.MouseButton.LeftButton
        event = QTabletEvent(kind, pen, pos, QPointF(canvas.mapToGlobal(pos)), pressure, 0.0, 0.0, 0.0, 0.0, 0.0,
                             Qt.KeyboardModifier.NoModifier, button, buttons)
        QApplication.sendEvent(canvas, event)


def test_tablet_pressure_shapes_the_stroke(window: MainWindow, png_path: Path) -> None:
    """A light pen stroke paints less than a firm one along the same path (pressure -> size)."""
    window.open_path(png_path)
    layer = window.doc.active
    before = layer.surface.to_array()
    path = [(10.0, 30.0), (30.0, 30.0), (50.0, 30.0), (70.0, 30.0)]
    _tablet_stroke(window, path, 0.2)
    light = np.abs(layer.surface.to_array().astype(int) - before).sum(axis=2) > 0
    window.doc.history.undo()
    assert np.array_equal(layer.surface.to_array(), before)
    _tablet_stroke(window, path, 1.0)
    firm = np.abs(layer.surface.to_array().astype(int) - before).sum(axis=2) > 0
    assert light.any() and firm.sum() > light.sum() * 1.5
    assert window.doc.history.steps == ["Brush stroke on Background"]
