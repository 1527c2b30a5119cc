"""The current tool and brush settings, shared by the canvas and the tool options toolbar.

One QObject holds them so that a change from any side ([ and ] on the canvas, a spin box, a menu
shortcut) reaches every view through one `changed` signal.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor

from diffedit.document.brush import BrushMode, BrushSettings
from diffedit.document.layers import Layer, MaskLayer

MIN_SIZE, MAX_SIZE = 1.0, 1000.0


class Tool(StrEnum):
    BRUSH = "brush"
    ERASER = "eraser"
    MASK = "mask"
    MASK_ERASER = "mask-eraser"
    RECT_SELECT = "rect-select"
    ELLIPSE_SELECT = "ellipse-select"
    PICKER = "picker"
    FILL = "fill"

    @property
    def label(self) -> str:
        return _LABELS[self.value][0]

    @property
    def shortcut(self) -> str:
        return _LABELS[self.value][1]

    @property
    def short_label(self) -> str:
        """For the toolbar, where eight full names do not fit beside the brush settings."""
        return {"rect-select": "Rect", "ellipse-select": "Ellipse", "picker": "Picker"}.get(self.value, self.label)

    @property
    def paints(self) -> bool:
        """Brush-engine tools (drag = stroke, with a brush outline); the others act on press/release."""
        return self in (Tool.BRUSH, Tool.ERASER, Tool.MASK, Tool.MASK_ERASER)

    @property
    def selects(self) -> bool:
        return self in (Tool.RECT_SELECT, Tool.ELLIPSE_SELECT)

    @property
    def paints_inpaint_mask(self) -> bool:
        return self in (Tool.MASK, Tool.MASK_ERASER)


_LABELS = {
    "brush": ("Brush", "B"),
    "eraser": ("Eraser", "E"),
    "mask": ("Mask brush", "M"),
    "mask-eraser": ("Mask eraser", "Shift+M"),
    "rect-select": ("Rectangle select", "R"),
    "ellipse-select": ("Ellipse select", "Shift+R"),
    "picker": ("Colour picker", "I"),
    "fill": ("Fill", "G"),
}


class ToolState(QObject):
    """Tool, brush settings and colours; emits `changed` after any of them changes."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tool = Tool.BRUSH
        self.settings = BrushSettings(size=24.0, hardness=0.8)
        self.color = QColor(20, 20, 20)
        self.background = QColor(255, 255, 255)

    def set_tool(self, tool: Tool) -> None:
        if tool is not self.tool:
            self.tool = Tool(tool)
            self.changed.emit()

    def set_color(self, color: QColor) -> None:
        if color.isValid() and color != self.color:
            self.color = QColor(color)
            self.changed.emit()

    def set_background(self, color: QColor) -> None:
        if color.isValid() and color != self.background:
            self.background = QColor(color)
            self.changed.emit()

    def swap_colors(self) -> None:
        """X: foreground and background trade places, as in other paint programs."""
        self.color, self.background = self.background, self.color
        self.changed.emit()

    def update_settings(self, **values: float) -> None:
        """Change brush settings by name (size, hardness, opacity, flow); invalid values raise ValueError."""
        if "size" in values:
            values["size"] = min(max(float(values["size"]), MIN_SIZE), MAX_SIZE)
        new = replace(self.settings, **values)  # BrushSettings validates in __post_init__
        if new != self.settings:
            self.settings = new
            self.changed.emit()

    def step_size(self, bigger: bool) -> None:
        """[ and ]: about 15% per press, at least one pixel, as in other paint programs."""
        size = self.settings.size
        step = max(1.0, round(size * 0.15))
        self.update_settings(size=round(size + step if bigger else size - step))

    def rgba(self) -> tuple[int, int, int, int]:
        c = self.color
        return c.red(), c.green(), c.blue(), c.alpha()

    def mode_for(self, layer: Layer, alt: bool = False) -> BrushMode:
        """The brush mode the current tool uses on `layer`; Alt turns adding into removing for masks."""
        if isinstance(layer, MaskLayer):
            erase = self.tool in (Tool.ERASER, Tool.MASK_ERASER)
            return BrushMode.MASK_SUBTRACT if erase != alt else BrushMode.MASK_ADD
        return BrushMode.ERASE if self.tool is Tool.ERASER else BrushMode.PAINT
