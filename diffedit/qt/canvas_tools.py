"""The canvas tools that are not brush strokes: rectangle and ellipse selection, colour picker, fill.

Kept apart from the canvas so the canvas stays about viewing and painting; each tool ends in one
document operation (one undo step) from the Qt-free core.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from diffedit.document import masks
from diffedit.document.geometry import Rect
from diffedit.document.layers import LayerLockedError, MaskLayer
from diffedit.document.masks import SelectionMode
from diffedit.qt.tools import Tool

if TYPE_CHECKING:
    from diffedit.qt.canvas import Canvas


def selection_mode(modifiers: Qt.KeyboardModifier) -> SelectionMode:
    """Shift adds, Alt subtracts, both intersect (GIMP's and Krita's convention)."""
    shift = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
    alt = bool(modifiers & Qt.KeyboardModifier.AltModifier)
    if shift and alt:
        return SelectionMode.INTERSECT
    return SelectionMode.ADD if shift else SelectionMode.SUBTRACT if alt else SelectionMode.REPLACE


class CanvasTools:
    """Press/move/release handling for the non-brush tools of one canvas."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas
        self.drag: tuple[QPointF, QPointF, SelectionMode] | None = None

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        tool = self.canvas.tools.tool
        if tool.selects:
            self.drag = (pos, pos, selection_mode(modifiers))
        elif tool is Tool.PICKER:
            self.pick(pos, background=bool(modifiers & Qt.KeyboardModifier.AltModifier))
        elif tool is Tool.FILL:
            self.fill()

    def move(self, pos: QPointF) -> bool:
        """Follow a drag; False when no drag is going on."""
        if self.drag is None:
            return False
        old = self._widget_rect()
        self.drag = (self.drag[0], pos, self.drag[2])
        self.canvas.update(old.united(self._widget_rect()).toAlignedRect().adjusted(-2, -2, 2, 2))
        return True

    def release(self, pos: QPointF) -> bool:
        """Finish a selection drag: one undo step. A click without a drag, replacing, selects nothing."""
        if self.drag is None or self.canvas.doc is None:
            self.drag = None
            return False
        self.move(pos)
        rect, mode = self.doc_rect(), self.drag[2]
        self.drag = None
        doc = self.canvas.doc
        if rect.is_empty():
            if mode is SelectionMode.REPLACE and doc.has_selection:
                masks.select_none(doc)
            return True
        if self.canvas.tools.tool is Tool.ELLIPSE_SELECT:
            masks.select_ellipse(doc, rect, mode)
        else:
            masks.select_rectangle(doc, rect, mode)
        return True

    def cancel(self) -> None:
        if self.drag is not None:
            self.drag = None
            self.canvas.update()

    def doc_rect(self) -> Rect:
        """The dragged rectangle in whole document pixels (either drag direction)."""
        assert self.drag is not None
        (x0, y0), (x1, y1) = (self.canvas.widget_to_doc(p) for p in self.drag[:2])
        left, top = round(min(x0, x1)), round(min(y0, y1))
        return Rect(left, top, round(max(x0, x1)) - left, round(max(y0, y1)) - top)

    def _widget_rect(self) -> QRectF:
        assert self.drag is not None
        return QRectF(self.drag[0], self.drag[1]).normalized()

    def paint(self, painter: QPainter) -> None:
        """The shape being dragged, black and white dashes so it shows on any image."""
        if self.drag is None:
            return
        r = self.doc_rect()
        area = QRectF(self.canvas.doc_to_widget(r.x, r.y), self.canvas.doc_to_widget(r.right, r.bottom))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for color, style in ((QColor(255, 255, 255), Qt.PenStyle.SolidLine), (QColor(0, 0, 0), Qt.PenStyle.DashLine)):
            painter.setPen(QPen(color, 1, style))
            if self.canvas.tools.tool is Tool.ELLIPSE_SELECT:
                painter.drawEllipse(area)
            else:
                painter.drawRect(area)

    def pick(self, pos: QPointF, background: bool = False) -> None:
        """Colour picker: the composite's colour under the pointer (Alt: the background colour)."""
        doc = self.canvas.doc
        if doc is None:
            return
        x, y = (math.floor(v) for v in self.canvas.widget_to_doc(pos))
        if not (0 <= x < doc.width and 0 <= y < doc.height):
            return
        r, g, b, a = (int(v) for v in doc.composite(Rect(x, y, 1, 1))[0, 0])
        color = QColor(r, g, b, a)
        tools = self.canvas.tools
        tools.set_background(color) if background else tools.set_color(color)
        self.canvas.message.emit(f"Picked {color.name()} (alpha {a})")

    def fill(self) -> None:
        """Fill the selection (or the whole active layer) with the foreground colour."""
        doc = self.canvas.doc
        layer = doc.active if doc is not None else None
        if doc is None or layer is None:
            self.canvas.message.emit("There is no layer to fill: add a layer first")
            return
        try:
            doc.fill_layer(layer, 255 if isinstance(layer, MaskLayer) else self.canvas.tools.rgba())
        except (LayerLockedError, ValueError) as exc:
            self.canvas.message.emit(str(exc))
