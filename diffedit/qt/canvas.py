"""The canvas: shows the composite over a checkerboard, zooms, pans and paints with the brush engine.

Changed rectangles reported while a stroke adds a point are gathered and redrawn once per point.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFocusEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QTabletEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from diffedit.document.brush import Stroke
from diffedit.document.document import Document
from diffedit.document.geometry import Rect
from diffedit.document.layers import Layer, LayerLockedError, MaskLayer
from diffedit.qt.bindings import Connections, checkerboard
from diffedit.qt.canvas_tools import CanvasTools
from diffedit.qt.display import EMPTY, DisplayImages
from diffedit.qt.tools import ToolState

ZOOM_STEPS = (1 / 32, 1 / 16, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
              8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)
MIN_ZOOM, MAX_ZOOM = ZOOM_STEPS[0], ZOOM_STEPS[-1]
BACKGROUND = QColor(58, 58, 62)
FIT_MARGIN = 16


class Canvas(QWidget):
    """Displays one document and turns mouse and tablet input into brush strokes and view changes."""

    cursor_moved = Signal(object)  # (x, y) in document pixels, or None when the pointer left
    zoom_changed = Signal(float)
    view_changed = Signal()  # the zoom or the pan changed: what is shown where moved
    hover_moved = Signal(object)  # the pointer's widget position (QPointF), or None when it left
    message = Signal(str)  # something the user should read in the status bar
    mask_shown_changed = Signal(bool)

    def __init__(self, tools: ToolState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tools = tools
        self.doc: Document | None = None
        self.zoom = 1.0
        self.origin = QPointF(0, 0)  # where document pixel (0, 0) is on the widget
        self.mask_shown = True
        self._images: DisplayImages | None = None
        self._auto_fit = True
        self._fit_cap = 1.0
        self._stroke: Stroke | None = None
        self._mask_created = False  # the current stroke created the inpainting mask
        self._pan_from: QPointF | None = None
        self._space = False
        self._hover: QPointF | None = None
        self._batching = False
        self._pending: tuple[Rect, Rect] = (EMPTY, EMPTY)
        self._conns = Connections()
        self._checker = QBrush(checkerboard())
        self.tool_input = CanvasTools(self)  # selection, picker and fill tools
        self.preview: QImage | None = None  # a running task's live preview, drawn over the document
        self.preview_rect: Rect | None = None
        self.setMouseTracking(True)
        self.setTabletTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setMinimumSize(200, 150)
        tools.changed.connect(self._update_cursor_area)

    # -- document ------------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        """Show another document (or none); drops the old one's connections and any stroke."""
        self.cancel_stroke()
        self._conns.clear()
        self.doc = doc
        self.preview = self.preview_rect = None
        self._images = None if doc is None else DisplayImages(doc)
        if doc is None:
            self.update()
            self.view_changed.emit()
            return
        self._images.masks_shown = self.mask_shown
        self._conns.connect(doc.events.pixels_changed, self._on_pixels_changed)
        self._conns.connect(doc.events.selection_changed, self._on_selection_changed)
        self._conns.connect(doc.events.size_changed, self._on_size_changed)
        self._refresh(doc.bounds, doc.bounds)
        self.fit(max_zoom=1.0)

    def _on_size_changed(self, width: int, height: int) -> None:
        """Canvas resized or image scaled: new display images of the new size, and fit it again."""
        assert self.doc is not None
        self.tool_input.cancel()
        self._images = DisplayImages(self.doc)
        self._images.masks_shown = self.mask_shown
        self._refresh(self.doc.bounds, self.doc.bounds)
        self.fit(max(self._fit_cap, 1.0) if self._auto_fit else 1.0)

    def set_mask_shown(self, shown: bool) -> None:
        """Show or hide the tinted overlay of the mask layers (the document is not changed)."""
        if shown != self.mask_shown:
            self.mask_shown = shown
            if self._images is not None:
                self._images.masks_shown = shown
                self._refresh(EMPTY, self._images.doc.bounds)
            self.mask_shown_changed.emit(shown)

    def _on_pixels_changed(self, layer: Layer | None, rect: Rect | None) -> None:
        assert self.doc is not None
        rect = self.doc.bounds if rect is None else rect
        is_mask = isinstance(layer, MaskLayer)
        # Masks are not composited, only tinted; raster layers do not change the overlay.
        self._invalidate(EMPTY if is_mask else rect, rect if layer is None or is_mask else EMPTY)

    def _on_selection_changed(self, rect: Rect | None) -> None:
        assert self.doc is not None
        self._invalidate(EMPTY, self.doc.bounds if rect is None else rect)

    def _invalidate(self, image_rect: Rect, overlay_rect: Rect) -> None:
        if self._batching:
            self._pending = (self._pending[0].union(image_rect), self._pending[1].union(overlay_rect))
        else:
            self._refresh(image_rect, overlay_rect)

    def _flush(self) -> None:
        pending, self._pending = self._pending, (EMPTY, EMPTY)
        self._refresh(*pending)

    def _refresh(self, image_rect: Rect, overlay_rect: Rect) -> None:
        """Recomposite the given rectangles into the display images and schedule a repaint."""
        if self._images is not None:
            dirty = self._images.refresh(image_rect, overlay_rect)
            if not dirty.is_empty():
                self.update(self.widget_rect(dirty))

    def set_preview(self, image: QImage | None, rect: Rect | None = None) -> None:
        """Show a task's preview stretched over `rect` (document pixels), or remove it (None)."""
        self.preview, self.preview_rect = (image, rect) if image is not None and rect is not None else (None, None)
        self.update()

    def display_image(self) -> QImage:
        """The composite as shown (without overlays), for tests and screenshots."""
        return self._images.image if self._images is not None else QImage()

    def overlay_image(self) -> QImage:
        """The tinted masks and selection drawn over the composite."""
        return self._images.overlay if self._images is not None else QImage()

    # -- view ----------------------------------------------------------------------------------
    def widget_to_doc(self, pos: QPointF) -> tuple[float, float]:
        return (pos.x() - self.origin.x()) / self.zoom, (pos.y() - self.origin.y()) / self.zoom

    def doc_to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(self.origin.x() + x * self.zoom, self.origin.y() + y * self.zoom)

    def widget_rect(self, rect: Rect) -> QRect:
        """The widget area showing a document rectangle, one pixel larger for smoothing."""
        top_left = self.doc_to_widget(rect.x, rect.y)
        return (
            QRectF(top_left.x(), top_left.y(), rect.w * self.zoom, rect.h * self.zoom)
            .toAlignedRect()
            .adjusted(-1, -1, 1, 1)
        )

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the document point under `anchor` (default: the widget centre) in place."""
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        anchor = QPointF(self.width() / 2, self.height() / 2) if anchor is None else anchor
        self.origin = anchor - (anchor - self.origin) * (zoom / self.zoom)
        self.zoom = zoom
        self._auto_fit = False
        self.update()
        self.view_changed.emit()
        self.zoom_changed.emit(zoom)

    def zoom_in(self) -> None:
        self.set_zoom(next((z for z in ZOOM_STEPS if z > self.zoom * 1.001), MAX_ZOOM))

    def zoom_out(self) -> None:
        self.set_zoom(next((z for z in reversed(ZOOM_STEPS) if z < self.zoom / 1.001), MIN_ZOOM))

    def actual_size(self) -> None:
        """100%: one document pixel per screen pixel, centred."""
        self._center(1.0)
        self._auto_fit = False

    def fit(self, max_zoom: float = MAX_ZOOM) -> None:
        """Fit the whole document in the widget, and keep fitting as the window is resized.

        A newly shown document fits with `max_zoom` 1, so small images open at 100%, not blown up.
        """
        self._fit_cap = max_zoom
        if self.doc is None:
            return
        avail_w, avail_h = max(self.width() - 2 * FIT_MARGIN, 1), max(self.height() - 2 * FIT_MARGIN, 1)
        self._center(min(avail_w / self.doc.width, avail_h / self.doc.height, max_zoom))
        self._auto_fit = True

    def _center(self, zoom: float) -> None:
        if self.doc is None:
            return
        self.zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        self.origin = QPointF(
            round((self.width() - self.doc.width * self.zoom) / 2),
            round((self.height() - self.doc.height * self.zoom) / 2),
        )
        self.update()
        self.view_changed.emit()
        self.zoom_changed.emit(self.zoom)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit(self._fit_cap)

    # -- painting the widget -------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        exposed = event.rect()
        painter.fillRect(exposed, BACKGROUND)
        doc = self.doc
        if doc is not None:
            doc_area = QRectF(self.origin, self.doc_to_widget(doc.width, doc.height))
            visible = doc_area.intersected(QRectF(exposed))
            if not visible.isEmpty():
                painter.setBrushOrigin(self.origin.toPoint())
                painter.fillRect(visible, self._checker)
                x0, y0 = self.widget_to_doc(visible.topLeft())
                x1, y1 = self.widget_to_doc(visible.bottomRight())
                src = Rect(max(math.floor(x0), 0), max(math.floor(y0), 0), 0, 0)
                src = Rect(src.x, src.y, min(math.ceil(x1), doc.width) - src.x, min(math.ceil(y1), doc.height) - src.y)
                source = QRectF(src.x, src.y, src.w, src.h)
                target = QRectF(self.doc_to_widget(src.x, src.y), self.doc_to_widget(src.right, src.bottom))
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 1)
                images = self._images
                assert images is not None
                painter.drawImage(target, images.image, source)
                if images.overlay_used:
                    painter.drawImage(target, images.overlay, source)
            self._paint_preview(painter)
            self.tool_input.paint(painter)
            painter.setPen(QPen(QColor(0, 0, 0, 120), 1))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(doc_area.adjusted(-1, -1, 0, 0))
            self._paint_brush_outline(painter)
        painter.end()

    def _paint_preview(self, painter: QPainter) -> None:
        if self.preview is None or self.preview_rect is None:
            return
        r = self.preview_rect
        area = QRectF(self.doc_to_widget(r.x, r.y), self.doc_to_widget(r.right, r.bottom))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(area, self.preview)
        pen = QPen(QColor(255, 200, 0, 230), 1, Qt.PenStyle.DashLine)  # marks the area being generated
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(area.adjusted(-0.5, -0.5, 0.5, 0.5))

    def _brush_radius(self) -> float:
        return self.tools.settings.size / 2 * self.zoom

    def _paint_brush_outline(self, painter: QPainter) -> None:
        if self._hover is None or self._pan_from is not None or self._space or not self.tools.tool.paints:
            return
        r = self._brush_radius()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if r >= 3:
            painter.setPen(QPen(QColor(0, 0, 0, 200), 1))
            painter.drawEllipse(self._hover, r, r)
            painter.setPen(QPen(QColor(255, 255, 255, 200), 1))
            painter.drawEllipse(self._hover, r - 1, r - 1)

    def _update_cursor_area(self) -> None:
        if self._hover is not None:
            r = self._brush_radius() + 3
            self.update(QRectF(self._hover.x() - r, self._hover.y() - r, 2 * r, 2 * r).toAlignedRect())

    # -- input ---------------------------------------------------------------------------------
    def _move_hover(self, pos: QPointF | None) -> None:
        self._update_cursor_area()
        self._hover = pos
        self._update_cursor_area()
        self.hover_moved.emit(pos)
        if pos is None or self.doc is None:
            self.cursor_moved.emit(None)
        else:
            x, y = self.widget_to_doc(pos)
            self.cursor_moved.emit((math.floor(x), math.floor(y)))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space):
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif button == Qt.MouseButton.LeftButton and self._stroke is None and not self.tools.tool.paints:
            self.tool_input.press(event.position(), event.modifiers())
        elif button == Qt.MouseButton.LeftButton and self._stroke is None:
            alt = bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
            self.begin_stroke(event.position(), alt)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._pan_from is not None:
            self.origin += pos - self._pan_from
            self._pan_from = pos
            self._auto_fit = False
            self.update()
            self.view_changed.emit()
        elif self._stroke is not None:
            self.continue_stroke(pos)
        else:
            self.tool_input.move(pos)
        self._move_hover(pos)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        if self._pan_from is not None and button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan_from = None
            self.setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.CrossCursor)
        elif button == Qt.MouseButton.LeftButton and self._stroke is not None:
            self.continue_stroke(event.position())
            self.end_stroke()
        elif button == Qt.MouseButton.LeftButton:
            self.tool_input.release(event.position())

    def tabletEvent(self, event: QTabletEvent) -> None:
        """Pen input with pressure; accepting it stops Qt from also sending mouse events."""
        kind, pos = event.type(), event.position()
        if not self.tools.tool.paints:  # other tools take the mouse events Qt makes from ignored pen input
            event.ignore()
            return
        if kind == QEvent.Type.TabletPress and not self._space and event.button() == Qt.MouseButton.LeftButton:
            self.begin_stroke(pos, bool(event.modifiers() & Qt.KeyboardModifier.AltModifier), event.pressure())
        elif kind == QEvent.Type.TabletMove and self._stroke is not None:
            self.continue_stroke(pos, event.pressure())
        elif kind == QEvent.Type.TabletRelease and self._stroke is not None:
            self.end_stroke()
        else:
            event.ignore()
            return
        self._move_hover(pos)
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.set_zoom(self.zoom * 1.2**steps, event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            if self._pan_from is None:
                self.setCursor(Qt.CursorShape.OpenHandCursor)
            self._update_cursor_area()
        elif event.key() == Qt.Key.Key_Escape and (self._stroke is not None or self.tool_input.drag is not None):
            self.cancel_stroke()
            self.tool_input.cancel()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            if self._pan_from is None:
                self.setCursor(Qt.CursorShape.CrossCursor)
            self._update_cursor_area()
        else:
            super().keyReleaseEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._move_hover(None)
        super().leaveEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        self._space = False  # the key release goes elsewhere; do not get stuck in pan mode
        super().focusOutEvent(event)

    # -- strokes -------------------------------------------------------------------------------
    def _stroke_target(self) -> Layer | None:
        doc = self.doc
        if doc is None:
            return None
        if self.tools.tool.paints_inpaint_mask:
            if not self.mask_shown:
                self.set_mask_shown(True)
            return doc.ensure_inpaint_mask()
        if doc.active is None:
            self.message.emit("There is no layer to paint on: add a layer first")
        return doc.active

    def begin_stroke(self, pos: QPointF, alt: bool = False, pressure: float = 1.0) -> None:
        """Start a stroke on the active layer (or the inpainting mask for the mask tools)."""
        self._mask_created = (
            self.tools.tool.paints_inpaint_mask and self.doc is not None and self.doc.inpaint_mask is None
        )
        layer = self._stroke_target()
        if layer is None or self.doc is None:
            return
        if not layer.visible:
            self.message.emit(f"Layer '{layer.name}' is hidden: show it to paint on it")
            return
        try:
            self._stroke = Stroke(
                self.doc, layer, self.tools.settings, self.tools.mode_for(layer, alt), self.tools.rgba()
            )
        except (LayerLockedError, ValueError) as exc:
            self.message.emit(str(exc))
            return
        self.continue_stroke(pos, pressure)

    def continue_stroke(self, pos: QPointF, pressure: float = 1.0) -> None:
        if self._stroke is None:
            return
        x, y = self.widget_to_doc(pos)
        self._batching = True
        try:
            self._stroke.add_point(x, y, pressure)
        finally:
            self._batching = False
            self._flush()

    def end_stroke(self) -> None:
        """Finish the stroke: it becomes one undo step."""
        stroke, self._stroke = self._stroke, None
        if stroke is not None and stroke.end() and self._mask_created and self.doc is not None:
            # the mask was created for this stroke: undoing the stroke removes it too
            self.doc.history.merge_last(2, stroke.text)
        self._mask_created = False

    def cancel_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is not None:
            stroke.cancel()

    @property
    def painting(self) -> bool:
        return self._stroke is not None
