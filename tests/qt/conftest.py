"""Qt test setup: a headless platform before Qt loads, a window fixture and pixel helpers."""

import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from diffedit.qt.main_window import MainWindow


def make_png(path: Path, width: int = 96, height: int = 64) -> Path:
    """An opaque gradient, so every pixel differs from the brush colour and from its neighbours."""
    ys, xs = np.mgrid[0:height, 0:width]
    rgb = np.stack([xs * 255 // width, ys * 255 // height, np.full_like(xs, 180)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(path)
    return path


@pytest.fixture
def png_maker():
    """`png_maker(path, width, height)`: write a gradient PNG (tests cannot import conftest by name)."""
    return make_png


@pytest.fixture
def png_path(tmp_path: Path) -> Path:
    return make_png(tmp_path / "sunset.png")


@pytest.fixture
def window(qtbot, monkeypatch) -> Iterator[MainWindow]:
    win = MainWindow()
    # Closing a modified document would ask; answer "discard" so teardown never blocks on a modal box.
    monkeypatch.setattr(win, "_ask_save_changes", lambda: QMessageBox.StandardButton.Discard)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    # An error box left open stays modal after the test and would swallow the next tests' mouse input.
    for box in win.findChildren(QMessageBox):
        box.close()


class Mouse:
    """Real mouse events on a window's canvas, placed by document coordinates."""

    def __init__(self, qtbot) -> None:
        self.qtbot = qtbot

    @staticmethod
    def point(win: MainWindow, x: float, y: float) -> QPoint:
        return win.canvas.doc_to_widget(x, y).toPoint()

    def drag(self, win: MainWindow, points: list[tuple[float, float]], modifier=Qt.KeyboardModifier.NoModifier) -> None:
        """Press at the first document point, move through the others, release at the last."""
        canvas, bot = win.canvas, self.qtbot
        bot.mousePress(canvas, Qt.MouseButton.LeftButton, modifier, self.point(win, *points[0]))
        for p in points[1:]:
            bot.mouseMove(canvas, self.point(win, *p))
        bot.mouseRelease(canvas, Qt.MouseButton.LeftButton, modifier, self.point(win, *points[-1]))


@pytest.fixture
def mouse(qtbot) -> Mouse:
    return Mouse(qtbot)


@pytest.fixture(autouse=True)
def _private_config(tmp_path: Path, monkeypatch) -> None:
    """Settings, recent files and recovery files in a temporary folder: never the user's own."""
    monkeypatch.setenv("DIFFEDIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("DIFFEDIT_RECOVERY_DIR", str(tmp_path / "recovery"))
