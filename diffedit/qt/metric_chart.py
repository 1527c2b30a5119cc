"""A small line chart of FID and KID against training step, drawn with QPainter (no chart library).

FID uses the left axis, KID the right one (with its spread as error bars); points are placed by step,
or by their order when no step is known. Clicking a point emits `point_clicked(index)`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

FID_COLOUR = QColor("#2f6db5")
KID_COLOUR = QColor("#d9822b")


@dataclass
class ChartPoint:
    x: float  # the training step (or the row's position when no step is known)
    fid: float | None
    kid: float | None = None
    kid_std: float | None = None


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _nice_step(span: float, count: int) -> float:
    raw = span / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def nice_ticks(values: list[float], count: int = 4) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) that span `values`; the first and last
    are the axis' ends."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    pad = (hi - lo) * 0.04  # keep points off the frame
    lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo, count)
    start = math.floor(lo / step) * step
    ticks = [start]
    while ticks[-1] < hi - 1e-9 * step:
        ticks.append(start + len(ticks) * step)
    return ticks


def _range(values: list[float]) -> tuple[float, float]:
    ticks = nice_ticks(values)
    return ticks[0], ticks[-1]


def _fmt(v: float) -> str:
    a = abs(v)
    if a < 1e-12:
        return "0"
    if a >= 1e5 or a < 1e-3:
        return f"{v:.3g}"
    return f"{v:.6g}"


class MetricChart(QWidget):
    point_clicked = Signal(int)

    MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 64, 26, 34

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[ChartPoint] = []
        self.x_label = "step"
        self.selected: int | None = None
        self.setMinimumSize(260, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("FID (left axis, blue) and KID ± spread (right axis, orange) against training step")

    def sizeHint(self) -> QSize:
        return QSize(420, 260)

    def set_points(self, points: list[ChartPoint], x_label: str = "step") -> None:
        self.points = list(points)
        self.x_label = x_label
        if self.selected is not None and self.selected >= len(self.points):
            self.selected = None
        self.update()

    def set_selected(self, index: int | None) -> None:
        self.selected = index
        self.update()

    # -- geometry ----------------------------------------------------------------------------------
    def plot_rect(self) -> QRectF:
        return QRectF(self.MARGIN_L, self.MARGIN_T, max(1.0, self.width() - self.MARGIN_L - self.MARGIN_R),
                      max(1.0, self.height() - self.MARGIN_T - self.MARGIN_B))

    def _x_range(self) -> tuple[float, float]:
        xs = [p.x for p in self.points]
        lo, hi = min(xs), max(xs)
        if hi - lo < 1e-12:
            return lo - 1, hi + 1
        pad = (hi - lo) * 0.06
        return lo - pad, hi + pad

    def _kid_values(self) -> list[float]:
        out: list[float] = []
        for p in self.points:
            if _finite(p.kid):
                std = p.kid_std if _finite(p.kid_std) else 0.0
                out += [p.kid - std, p.kid + std]  # type: ignore[operator]
        return out

    def positions(self) -> list[tuple[QPointF | None, QPointF | None]]:
        """Widget positions of each point's (FID, KID) marker; None where the value is missing."""
        if not self.points:
            return []
        r = self.plot_rect()
        x0, x1 = self._x_range()
        fids = [p.fid for p in self.points if _finite(p.fid)]
        kids = self._kid_values()
        f0, f1 = _range(fids) if fids else (0.0, 1.0)
        k0, k1 = _range(kids) if kids else (0.0, 1.0)
        out = []
        for p in self.points:
            x = r.left() + (p.x - x0) / (x1 - x0) * r.width()
            fp = QPointF(x, r.bottom() - (p.fid - f0) / (f1 - f0) * r.height()) if _finite(p.fid) else None
            kp = QPointF(x, r.bottom() - (p.kid - k0) / (k1 - k0) * r.height()) if _finite(p.kid) else None
            out.append((fp, kp))
        return out

    # -- painting ----------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        painter.fillRect(self.rect(), pal.base())
        text = pal.text().color()
        grid = QColor(text)
        grid.setAlpha(40)
        r = self.plot_rect()
        fm = QFontMetrics(self.font())
        if not self.points:
            painter.setPen(text)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No results yet")
            painter.end()
            return
        x0, x1 = self._x_range()
        fids = [p.fid for p in self.points if _finite(p.fid)]
        kids = self._kid_values()
        f0, f1 = _range(fids) if fids else (0.0, 1.0)
        k0, k1 = _range(kids) if kids else (0.0, 1.0)
        # grid and axis labels (FID's round ticks; KID's labels at the same heights)
        f_ticks = nice_ticks(fids) if fids else [0.0, 1.0]
        for t in f_ticks:
            frac = (t - f0) / (f1 - f0)
            y = r.bottom() - frac * r.height()
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(r.left(), y), QPointF(r.right(), y))
            painter.setPen(FID_COLOUR)
            painter.drawText(QRectF(0, y - 8, self.MARGIN_L - 6, 16),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, _fmt(t))
        if kids:
            painter.setPen(KID_COLOUR)
            for t in nice_ticks(kids):
                y = r.bottom() - (t - k0) / (k1 - k0) * r.height()
                painter.drawLine(QPointF(r.right(), y), QPointF(r.right() + 4, y))
                painter.drawText(QRectF(r.right() + 6, y - 8, self.MARGIN_R - 6, 16),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, _fmt(t))
        painter.setPen(QPen(text, 1))
        painter.drawRect(r)
        steps = sorted({p.x for p in self.points})
        shown = steps if len(steps) <= 8 else [steps[round(i * (len(steps) - 1) / 7)] for i in range(8)]
        for s in shown:
            x = r.left() + (s - x0) / (x1 - x0) * r.width()
            painter.drawLine(QPointF(x, r.bottom()), QPointF(x, r.bottom() + 4))
            label = f"{s:g}"
            w = fm.horizontalAdvance(label)
            painter.drawText(QPointF(x - w / 2, r.bottom() + 6 + fm.ascent()), label)
        painter.drawText(QRectF(r.left(), self.height() - fm.height() - 1, r.width(), fm.height()),
                         Qt.AlignmentFlag.AlignRight, self.x_label)
        # legend
        painter.setPen(FID_COLOUR)
        painter.drawText(QPointF(r.left(), r.top() - 8), "● FID")
        if kids:
            painter.setPen(KID_COLOUR)
            legend = "● KID ± spread"
            painter.drawText(QPointF(r.right() - fm.horizontalAdvance(legend), r.top() - 8), legend)
        # series, in step order
        pos = self.positions()
        order = sorted(range(len(self.points)), key=lambda i: self.points[i].x)
        for which, colour in ((0, FID_COLOUR), (1, KID_COLOUR)):
            pts = [pos[i][which] for i in order if pos[i][which] is not None]
            painter.setPen(QPen(colour, 2))
            for a, b in itertools.pairwise(pts):
                painter.drawLine(a, b)
        for i, (fp, kp) in enumerate(pos):
            p = self.points[i]
            if kp is not None and _finite(p.kid_std) and p.kid_std:
                h = p.kid_std / (k1 - k0) * r.height()  # type: ignore[operator]
                painter.setPen(QPen(KID_COLOUR, 1))
                painter.drawLine(QPointF(kp.x(), kp.y() - h), QPointF(kp.x(), kp.y() + h))
                painter.drawLine(QPointF(kp.x() - 3, kp.y() - h), QPointF(kp.x() + 3, kp.y() - h))
                painter.drawLine(QPointF(kp.x() - 3, kp.y() + h), QPointF(kp.x() + 3, kp.y() + h))
            for q, colour in ((fp, FID_COLOUR), (kp, KID_COLOUR)):
                if q is None:
                    continue
                sel = i == self.selected
                painter.setPen(QPen(text if sel else colour, 2 if sel else 1))
                painter.setBrush(colour)
                painter.drawEllipse(q, 5 if sel else 3.5, 5 if sel else 3.5)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        best, best_d = None, 12.0
        for i, (fp, kp) in enumerate(self.positions()):
            for q in (fp, kp):
                if q is not None:
                    d = math.hypot(q.x() - event.position().x(), q.y() - event.position().y())
                    if d < best_d:
                        best, best_d = i, d
        if best is not None:
            self.point_clicked.emit(best)
        super().mousePressEvent(event)
