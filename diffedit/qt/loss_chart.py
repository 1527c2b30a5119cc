"""A small loss chart drawn with QPainter: raw training loss (faint), its running mean, validation loss.

No plotting dependency: a few hundred lines of Qt would be overkill for one chart, and the editor must
not pull in matplotlib. Long runs keep at most MAX_POINTS points (halved by averaging neighbours).
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

MAX_POINTS = 4000
SMOOTHING = 0.9  # exponential moving average of the loss, drawn over the raw values


def _nice(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.1e}"


class LossChart(QWidget):
    """`add(step, loss)` per step, `add_val(step, loss)` per checkpoint; `clear()` for a new run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[tuple[float, float]] = []  # (step, loss)
        self.smoothed: list[tuple[float, float]] = []
        self.val_points: list[tuple[float, float]] = []
        self._ema: float | None = None
        self.total = 0  # the run's planned steps: the x axis spans the whole run
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 140)
        self.setToolTip("Training loss per step (faint), its running mean (bold) and validation loss (dots)")

    def sizeHint(self) -> QSize:
        return QSize(420, 220)

    # -- data ------------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.points.clear()
        self.smoothed.clear()
        self.val_points.clear()
        self._ema = None
        self.update()

    def add(self, step: float, loss: float) -> None:
        if not math.isfinite(loss):
            return
        self._ema = loss if self._ema is None else SMOOTHING * self._ema + (1 - SMOOTHING) * loss
        self.points.append((step, loss))
        self.smoothed.append((step, self._ema))
        if len(self.points) > MAX_POINTS:
            self.points = _halve(self.points)
            self.smoothed = _halve(self.smoothed)
        self.update()

    def add_val(self, step: float, loss: float) -> None:
        if math.isfinite(loss):
            self.val_points.append((step, loss))
            self.update()

    # -- drawing ---------------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        text = pal.color(QPalette.ColorRole.Text)
        fm = self.fontMetrics()
        left = fm.horizontalAdvance("0.000e-00") + 6
        plot = QRectF(left, 8, max(10, self.width() - left - 10), max(10, self.height() - fm.height() - 18))
        grid = QColor(text)
        grid.setAlpha(40)
        p.setPen(QPen(grid, 1))
        for i in range(5):
            y = plot.top() + plot.height() * i / 4
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.setPen(QPen(text, 1))
        p.drawRect(plot)
        values = [v for _, v in self.points] + [v for _, v in self.val_points]
        if not values:
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "The loss appears here once training starts")
            p.end()
            return
        lo, hi = min(values), max(values)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5 * abs(lo or 1), hi + 0.5 * abs(hi or 1)
        pad = (hi - lo) * 0.05
        lo, hi = max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad
        steps = [s for s, _ in self.points] + [s for s, _ in self.val_points]
        x0 = min(steps) if steps else 0.0
        x1 = max(max(steps), float(self.total))
        if x1 <= x0:
            x1 = x0 + 1

        def at(step: float, value: float) -> QPointF:
            return QPointF(plot.left() + (step - x0) / (x1 - x0) * plot.width(),
                           plot.bottom() - (value - lo) / (hi - lo) * plot.height())

        for i in range(5):  # y labels
            value = hi - (hi - lo) * i / 4
            y = plot.top() + plot.height() * i / 4
            p.drawText(QRectF(0, y - fm.height() / 2, left - 4, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, _nice(value))
        below = QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height() + 4)
        p.drawText(below, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, f"step {int(x0)}")
        p.drawText(below, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, f"step {int(x1)}")
        p.setClipRect(plot.adjusted(1, 1, -1, -1))
        accent = pal.color(QPalette.ColorRole.Highlight)
        faint = QColor(accent)
        faint.setAlpha(70)
        self._polyline(p, [at(s, v) for s, v in self.points], QPen(faint, 1))
        self._polyline(p, [at(s, v) for s, v in self.smoothed], QPen(accent, 2))
        p.setPen(QPen(QColor(230, 120, 30), 1))
        p.setBrush(QColor(230, 120, 30))
        for s, v in self.val_points:
            p.drawEllipse(at(s, v), 3.5, 3.5)
        p.end()

    @staticmethod
    def _polyline(p: QPainter, pts: list[QPointF], pen: QPen) -> None:
        if not pts:
            return
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        if len(pts) == 1:
            p.drawEllipse(pts[0], 2, 2)
            return
        path = QPainterPath(pts[0])
        for pt in pts[1:]:
            path.lineTo(pt)
        p.drawPath(path)


def _halve(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Average neighbouring pairs (the last point of an odd list is kept as is)."""
    out = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in zip(points[::2], points[1::2], strict=False)]
    if len(points) % 2:
        out.append(points[-1])
    return out
