"""The tool options toolbar: tool buttons, brush colour, size, hardness, opacity and flow.

Spin boxes write into the shared ToolState and follow it back, so [ and ] on the canvas show here.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QAction, QColor, QIcon
from PySide6.QtWidgets import QColorDialog, QLabel, QSpinBox, QToolBar, QToolButton, QWidget

from diffedit.qt.bindings import color_swatch
from diffedit.qt.tools import MAX_SIZE, MIN_SIZE, ToolState


def _spin(low: int, high: int, suffix: str, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSuffix(suffix)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)  # typing "25" must not set the size to 2 first
    return spin


class ToolOptionsBar(QToolBar):
    def __init__(self, tools: ToolState, tool_actions: Iterable[QAction], parent: QWidget | None = None) -> None:
        super().__init__("Tool options", parent)
        self.setObjectName("tool-options")
        self.tools = tools
        for action in tool_actions:
            self.addAction(action)
        self.addSeparator()
        self.color_button = QToolButton()
        self.color_button.setToolTip("Brush colour")
        self.color_button.clicked.connect(self.choose_color)
        self.addWidget(self.color_button)
        self.background_button = QToolButton()
        self.background_button.setToolTip("Background colour (X swaps it with the brush colour)")
        self.background_button.clicked.connect(lambda: self.choose_color(background=True))
        self.addWidget(self.background_button)
        self.color_dialog: QColorDialog | None = None
        self.size_spin = _spin(int(MIN_SIZE), int(MAX_SIZE), " px", "Brush diameter ([ and ] change it)")
        self.hardness_spin = _spin(0, 100, " %", "Brush hardness: 100% has a crisp edge, 0% a soft one")
        self.opacity_spin = _spin(0, 100, " %", "Brush opacity: the most one stroke can cover")
        self.flow_spin = _spin(1, 100, " %", "Brush flow: how much each dab adds within a stroke")
        for label, spin in (
            ("Size", self.size_spin),
            ("Hardness", self.hardness_spin),
            ("Opacity", self.opacity_spin),
            ("Flow", self.flow_spin),
        ):
            self.addWidget(QLabel(f" {label} "))
            self.addWidget(spin)
        self.size_spin.valueChanged.connect(lambda v: self.tools.update_settings(size=float(v)))
        self.hardness_spin.valueChanged.connect(lambda v: self.tools.update_settings(hardness=v / 100))
        self.opacity_spin.valueChanged.connect(lambda v: self.tools.update_settings(opacity=v / 100))
        self.flow_spin.valueChanged.connect(lambda v: self.tools.update_settings(flow=v / 100))
        tools.changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        """Show the ToolState's values without echoing them back."""
        s = self.tools.settings
        for spin, value in (
            (self.size_spin, s.size),
            (self.hardness_spin, s.hardness * 100),
            (self.opacity_spin, s.opacity * 100),
            (self.flow_spin, s.flow * 100),
        ):
            spin.blockSignals(True)
            spin.setValue(round(value))
            spin.blockSignals(False)
        self.color_button.setIcon(QIcon(color_swatch(self.tools.color, 18)))
        self.background_button.setIcon(QIcon(color_swatch(self.tools.background, 14)))

    def choose_color(self, background: bool = False) -> None:
        """Open a colour dialog without blocking; choosing a colour sets the brush (or background) colour."""
        dialog = QColorDialog(self.tools.background if background else self.tools.color, self)
        dialog.setWindowTitle("Background colour" if background else "Brush colour")
        dialog.setOption(QColorDialog.ColorDialogOption.ShowAlphaChannel, True)
        dialog.colorSelected.connect(self.tools.set_background if background else self._color_chosen)
        self.color_dialog = dialog
        dialog.open()

    def _color_chosen(self, color: QColor) -> None:
        self.tools.set_color(color)
