"""Selection, colour picker and fill tools on the canvas with real mouse and key events."""

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from diffedit.qt.main_window import MainWindow
from diffedit.qt.tools import Tool

SHIFT, ALT = Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.AltModifier


def test_rectangle_selection_with_shift_adding_and_alt_subtracting(window: MainWindow, png_path: Path, qtbot,
                                                                 mouse) -> None:
    window.open_path(png_path)
    qtbot.keyClick(window.canvas, Qt.Key.Key_R)
    assert window.tools.tool is Tool.RECT_SELECT
    mouse.drag(window, [(10, 10), (20, 15), (30, 30)])
    sel = window.doc.selection_array()
    assert sel[10:30, 10:30].all() and sel.sum() == 20 * 20 * 255
    assert window.doc.history.steps[-1] == "Rectangle selection"
    mouse.drag(window, [(40, 10), (50, 20)], SHIFT)
    assert window.doc.selection_array()[10:20, 40:50].all() and window.doc.selection_array()[15, 15] == 255
    mouse.drag(window, [(10, 10), (20, 20)], ALT)
    sel = window.doc.selection_array()
    assert sel[15, 15] == 0 and sel[25, 25] == 255 and sel[15, 45] == 255
    assert window.canvas.tool_input.drag is None
    mouse.drag(window, [(5, 5), (5, 5)])  # a click without a drag deselects
    assert not window.doc.has_selection
    window.undo()
    assert window.doc.selection_array()[25, 25] == 255


def test_ellipse_selection_is_round(window: MainWindow, png_path: Path, qtbot, mouse) -> None:
    window.open_path(png_path)
    window.tools.set_tool(Tool.ELLIPSE_SELECT)
    mouse.drag(window, [(30, 40), (10, 20)])  # dragged up-left: same shape
    sel = window.doc.selection_array()
    assert sel[30, 20] == 255 and sel[20, 10] == 0 and sel[21, 11] == 0
    assert window.doc.history.steps[-1] == "Ellipse selection"


def test_picker_samples_the_composite_and_fill_fills_the_selection(window: MainWindow, png_path: Path, qtbot,
                                                                 mouse) -> None:
    window.open_path(png_path)
    qtbot.keyClick(window.canvas, Qt.Key.Key_I)
    assert window.tools.tool is Tool.PICKER
    mouse.drag(window, [(48, 32)])
    expected = window.doc.composite()[32, 48]
    assert window.tools.rgba() == tuple(int(v) for v in expected)
    mouse.drag(window, [(0, 0)], ALT)
    assert window.tools.background.red() == int(window.doc.composite()[0, 0, 0])

    window.tools.set_tool(Tool.RECT_SELECT)
    mouse.drag(window, [(0, 0), (10, 10)])
    qtbot.keyClick(window.canvas, Qt.Key.Key_G)
    assert window.tools.tool is Tool.FILL
    mouse.drag(window, [(50, 50)])
    pixels = window.doc.active.surface.to_array()
    assert np.all(pixels[:10, :10] == expected) and not np.all(pixels[20:, 20:] == expected)
    assert window.doc.history.steps[-1] == "Fill Background"


def test_x_swaps_foreground_and_background(window: MainWindow, png_path: Path, qtbot) -> None:
    window.open_path(png_path)
    fg, bg = window.tools.color, window.tools.background
    qtbot.keyClick(window.canvas, Qt.Key.Key_X)
    assert (window.tools.color, window.tools.background) == (bg, fg)


def test_the_canvas_follows_a_scale_and_its_undo(window: MainWindow, png_path: Path) -> None:
    window.open_path(png_path)
    window.doc.scale_image(2)
    assert window.canvas.display_image().size().toTuple() == (192, 128)
    assert np.array_equal(window.doc.composite().shape, (128, 192, 4))
    window.undo()
    assert window.canvas.display_image().size().toTuple() == (96, 64)


def test_a_first_selection_dims_the_whole_canvas_not_just_its_tiles(window: MainWindow, tmp_path: Path,
                                                                    mouse, png_maker) -> None:
    window.open_path(png_maker(tmp_path / "big.png", 600, 300))
    window.tools.set_tool(Tool.RECT_SELECT)
    mouse.drag(window, [(10, 10), (40, 40)])
    overlay = window.canvas.overlay_image()
    assert overlay.pixelColor(550, 280).alpha() > 100  # another tile: dimmed too
    assert overlay.pixelColor(20, 20).alpha() == 0  # selected: not dimmed
