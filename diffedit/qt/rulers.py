"""Rulers along the top and left of the canvas, in image pixels, like Krita's and GIMP's.

Each ruler maps its own coordinates to document pixels through the canvas (`Canvas.doc_to_widget`),
so it follows every zoom and pan the canvas makes; labelled ticks are 1, 2 or 5 times a power of ten
pixels apart, whichever keeps labels about LABEL_SPACING screen pixels apart. A marker shows where
the pointer is over the canvas.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QWidget

from diffedit.qt.canvas import Canvas

THICKNESS = 20  # pixels across a ruler
LABEL_SPACING = 56  # screen pixels wanted between labelled ticks, at least
MIN_MINOR_SPACING = 5  # screen pixels between unlabelled ticks, at least
RULER_BACKGROUND = QColor(44, 44, 48)
TICK_COLOR = QColor(170, 170, 176)
MARKER_COLOR = QColor(255, 160, 40)


def label_step(zoom: float, min_spacing: float = LABEL_SPACING) -> int:
    """Image pixels between labelled ticks: the least of 1, 2, 5, 10, 20, 50, ... drawn `min_spacing` apart."""
    magnitude = 1
    while True:
        for mantissa in (1, 2, 5):
            step = mantissa * magnitude
            if step * zoom >= min_spacing:
                return step
        magnitude *= 10


def minor_step(step: int, zoom: float, min_spacing: float = MIN_MINOR_SPACING) -> int | None:
    """Image pixels between the small ticks inside one labelled step (whole pixels only), or None."""
    for parts in (10, 5, 2):
        if step % parts == 0 and step // parts * zoom >= min_spacing:
            return step // parts
    return None


class Ruler(QWidget):
    """One ruler; `Qt.Orientation.Horizontal` runs along the top edge of the canvas and measures x."""

    def __init__(self, canvas: Canvas, orientation: Qt.Orientation, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.orientation = orientation
        self.marker: float | None = None  # the pointer's document coordinate along this ruler
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() * 0.75, 6.0))
        self.setFont(font)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        if self.horizontal:
            self.setFixedHeight(THICKNESS)
            self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        else:
            self.setFixedWidth(THICKNESS)
            self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)
        canvas.view_changed.connect(self.update)
        canvas.hover_moved.connect(self._on_hover)

    @property
    def horizontal(self) -> bool:
        return self.orientation == Qt.Orientation.Horizontal

    # -- mapping -------------------------------------------------------------------------------
    def _canvas_offset(self) -> float:
        """Where the canvas widget's own 0 lies in this ruler's coordinates, along the ruler."""
        at = self.mapFromGlobal(self.canvas.mapToGlobal(QPointF(0, 0)))
        return at.x() if self.horizontal else at.y()

    def doc_to_ruler(self, value: float) -> float:
        """The ruler coordinate showing a document coordinate (x for the top ruler, y for the left one)."""
        p = self.canvas.doc_to_widget(value, value)
        return self._canvas_offset() + (p.x() if self.horizontal else p.y())

    def ruler_to_doc(self, pos: float) -> float:
        """The document coordinate under a ruler coordinate."""
        at = pos - self._canvas_offset()
        x, y = self.canvas.widget_to_doc(QPointF(at, at))
        return x if self.horizontal else y

    # -- the marker ----------------------------------------------------------------------------
    def _on_hover(self, pos: QPointF | None) -> None:
        old = self.marker
        if pos is None or self.canvas.doc is None:
            self.marker = None
        else:
            x, y = self.canvas.widget_to_doc(pos)
            self.marker = x if self.horizontal else y
        if old != self.marker:
            for value in (old, self.marker):
                if value is not None:
                    self._update_around(self.doc_to_ruler(value))

    def marker_position(self) -> float | None:
        """Where the marker is drawn, in ruler coordinates (None: the pointer is not over the canvas)."""
        return None if self.marker is None else self.doc_to_ruler(self.marker)

    def _update_around(self, at: float) -> None:
        a = math.floor(at) - 6
        self.update(a, 0, 13, THICKNESS) if self.horizontal else self.update(0, a, THICKNESS, 13)

    # -- painting ------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(event.rect(), RULER_BACKGROUND)
        length = self.width() if self.horizontal else self.height()
        painter.setPen(QPen(TICK_COLOR.darker(150), 1))
        if self.horizontal:
            painter.drawLine(0, THICKNESS - 1, length, THICKNESS - 1)
        else:
            painter.drawLine(THICKNESS - 1, 0, THICKNESS - 1, length)
        if self.canvas.doc is not None:
            self._paint_ticks(painter, length)
            self._paint_marker(painter)
        painter.end()

    def _paint_ticks(self, painter: QPainter, length: int) -> None:
        zoom = self.canvas.zoom
        step = label_step(zoom)
        minor = minor_step(step, zoom) or step
        start, end = sorted((self.ruler_to_doc(0), self.ruler_to_doc(length)))
        painter.setPen(QPen(TICK_COLOR, 1))
        metrics = painter.fontMetrics()
        value = math.floor(start / minor) * minor
        while value <= end + minor:
            at = round(self.doc_to_ruler(value)) + 0.5
            if value % step == 0:
                self._line(painter, at, 0)
                self._label(painter, at, str(value), metrics.ascent())
            else:
                half = (value % step) * 2 == step  # the middle of a step is marked longer
                self._line(painter, at, THICKNESS * (0.5 if half else 0.7))
            value += minor

    def _line(self, painter: QPainter, at: float, start: float) -> None:
        if self.horizontal:
            painter.drawLine(QPointF(at, start), QPointF(at, THICKNESS))
        else:
            painter.drawLine(QPointF(start, at), QPointF(THICKNESS, at))

    def _label(self, painter: QPainter, at: float, text: str, ascent: int) -> None:
        if self.horizontal:
            painter.drawText(QPointF(at + 3, ascent + 1), text)
        else:  # read bottom to top, as in Krita, just past the tick like the top ruler's labels
            painter.save()
            painter.translate(ascent + 1, at + 3 + painter.fontMetrics().horizontalAdvance(text))
            painter.rotate(-90)
            painter.drawText(QPointF(0, 0), text)
            painter.restore()

    def _paint_marker(self, painter: QPainter) -> None:
        at = self.marker_position()
        if at is None:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(MARKER_COLOR)
        t = THICKNESS
        if self.horizontal:
            triangle = [QPointF(at - 4, t - 6), QPointF(at + 4, t - 6), QPointF(at, t)]
        else:
            triangle = [QPointF(t - 6, at - 4), QPointF(t - 6, at + 4), QPointF(t, at)]
        painter.drawPolygon(QPolygonF(triangle))
        painter.setPen(QPen(MARKER_COLOR, 1))
        self._line(painter, at, 0)


class CanvasArea(QWidget):
    """The canvas with a ruler above it and one to its left (and an empty corner where they meet)."""

    def __init__(self, canvas: Canvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.top_ruler = Ruler(canvas, Qt.Orientation.Horizontal)
        self.left_ruler = Ruler(canvas, Qt.Orientation.Vertical)
        self.corner = QWidget()
        self.corner.setFixedSize(THICKNESS, THICKNESS)
        self.corner.setAutoFillBackground(True)
        palette = self.corner.palette()
        palette.setColor(self.corner.backgroundRole(), RULER_BACKGROUND)
        self.corner.setPalette(palette)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(0)
        grid.addWidget(self.corner, 0, 0)
        grid.addWidget(self.top_ruler, 0, 1)
        grid.addWidget(self.left_ruler, 1, 0)
        grid.addWidget(canvas, 1, 1)
        self.setFocusProxy(canvas)

    @property
    def rulers_shown(self) -> bool:
        return not self.top_ruler.isHidden()

    def set_rulers_shown(self, shown: bool) -> None:
        for widget in (self.corner, self.top_ruler, self.left_ruler):
            widget.setVisible(shown)
