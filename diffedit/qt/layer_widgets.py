"""Pieces of the Layers dock: a list that reorders by drag and drop, a lock toggle drawn in each row,
and small layer thumbnails.

The list never moves its own items: a drop only reports (from row, to row) and the panel turns that into
one `Document.move_layer` step; the list is then rebuilt from the document's events like every other edit.
Thumbnails sample the layer's tiles (nearest pixel on a grid twice the icon size, then a smooth scale), so
one costs a few microseconds per stored tile whatever the document size, and never a composite.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QModelIndex, QPoint, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QDropEvent, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from diffedit.document.layers import Layer, MaskLayer
from diffedit.qt.bindings import checkerboard, rgba_to_qimage

THUMB_SIZE = 32
LOCK_ROLE = Qt.ItemDataRole.UserRole + 1
LOCK_SIZE = 16
LOCK_MARGIN = 6
ITEM_MODEL_MIME = "application/x-qabstractitemmodeldatalist"


# -- thumbnails ------------------------------------------------------------------------------------
def _sample_positions(length: int, count: int) -> np.ndarray:
    return np.minimum(((np.arange(count) + 0.5) * length / count).astype(np.int64), length - 1)


def sample_layer(layer: Layer, size: int) -> np.ndarray:
    """An RGBA array at most size x size (aspect kept) of a layer's pixels, read tile by tile."""
    surface = layer.surface
    w, h = surface.width, surface.height
    scale = min(size / w, size / h, 1.0)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    xs, ys = _sample_positions(w, tw), _sample_positions(h, th)
    out = np.zeros((th, tw, surface.channels), np.uint8)
    s = surface.tile_size
    for (tx, ty), tile in list(surface.tiles.items()):
        ox, oy = tx * s, ty * s
        i0, i1 = np.searchsorted(xs, [ox, ox + s])
        j0, j1 = np.searchsorted(ys, [oy, oy + s])
        if i0 < i1 and j0 < j1:
            out[j0:j1, i0:i1] = tile[ys[j0:j1, None] - oy, xs[None, i0:i1] - ox]
    if isinstance(layer, MaskLayer):
        rgba = np.empty((th, tw, 4), np.uint8)
        rgba[..., :3] = np.asarray(layer.color, np.uint8)
        rgba[..., 3] = out[..., 0]
        return rgba
    return out


def layer_thumbnail(layer: Layer, size: int = THUMB_SIZE) -> QPixmap:
    """A size x size picture of a layer over a checkerboard (masks in their tint colour), framed."""
    image = rgba_to_qimage(sample_layer(layer, size * 2))
    image = image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    x, y = (size - image.width()) // 2, (size - image.height()) // 2
    area = QRect(x, y, image.width(), image.height())
    painter.fillRect(area, checkerboard(4))
    painter.drawImage(x, y, image)
    frame = QColor(*layer.color) if isinstance(layer, MaskLayer) else QColor(0, 0, 0, 110)
    painter.setPen(QPen(frame, 1))
    painter.drawRect(area.adjusted(0, 0, -1, -1))
    painter.end()
    return pix


class ThumbnailCache:
    """Thumbnails by layer uid, remembered with the surface they were made from."""

    def __init__(self, size: int = THUMB_SIZE) -> None:
        self.size = size
        self._icons: dict[int, tuple[int, QIcon]] = {}
        self.made = 0  # how many thumbnails were computed (tests check the throttling with it)

    def clear(self) -> None:
        self._icons.clear()

    def forget(self, uid: int) -> None:
        self._icons.pop(uid, None)

    def icon(self, layer: Layer) -> QIcon:
        cached = self._icons.get(layer.uid)
        if cached is not None and cached[0] == layer.surface.uid:
            return cached[1]
        icon = QIcon(layer_thumbnail(layer, self.size))
        self.made += 1
        self._icons[layer.uid] = (layer.surface.uid, icon)
        return icon


# -- the lock toggle ---------------------------------------------------------------------------------
def draw_lock(painter: QPainter, rect: QRect, locked: bool, color: QColor) -> None:
    """A padlock, closed and solid when locked, open and faint when not."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    c = QColor(color)
    if not locked:
        c.setAlpha(70)
    r = QRectF(rect)
    body = QRectF(r.left() + r.width() * 0.15, r.top() + r.height() * 0.45, r.width() * 0.7, r.height() * 0.5)
    shackle = QPainterPath()
    sw = body.width() * 0.62
    sx = body.center().x() - sw / 2
    lift = 0 if locked else r.height() * 0.18
    top = r.top() + r.height() * 0.08 - lift
    shackle.moveTo(sx, body.top())
    shackle.lineTo(sx, top + sw / 2)
    shackle.arcTo(QRectF(sx, top, sw, sw), 180, -180)
    shackle.lineTo(sx + sw, body.top() - (lift if not locked else 0))
    painter.setPen(QPen(c, max(1.5, r.width() / 9)))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(shackle)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(c)
    painter.drawRoundedRect(body, 1.5, 1.5)
    painter.restore()


class LayerDelegate(QStyledItemDelegate):
    """Draws each row with a lock toggle at its right edge; a click on the lock reports the row."""

    lock_clicked = Signal(int)  # row

    @staticmethod
    def lock_rect(row_rect: QRect) -> QRect:
        return QRect(
            row_rect.right() - LOCK_SIZE - LOCK_MARGIN,
            row_rect.center().y() - LOCK_SIZE // 2 + 1,
            LOCK_SIZE,
            LOCK_SIZE,
        )

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = option.widget
        style = widget.style() if widget is not None else None
        if style is not None:  # the row's background (selection) across the lock column too
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, widget)
        narrowed = QStyleOptionViewItem(option)
        narrowed.rect = option.rect.adjusted(0, 0, -(LOCK_SIZE + 2 * LOCK_MARGIN), 0)
        super().paint(painter, narrowed, index)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = option.palette.ColorRole.HighlightedText if selected else option.palette.ColorRole.Text
        draw_lock(painter, self.lock_rect(option.rect), bool(index.data(LOCK_ROLE)), option.palette.color(role))

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        narrowed = QStyleOptionViewItem(option)
        narrowed.rect = option.rect.adjusted(0, 0, -(LOCK_SIZE + 2 * LOCK_MARGIN), 0)
        super().updateEditorGeometry(editor, narrowed, index)

    def editorEvent(self, event: QEvent, model, option: QStyleOptionViewItem, index: QModelIndex) -> bool:
        kinds = (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick)
        if event.type() in kinds and self.lock_rect(option.rect).adjusted(-3, -3, 3, 3).contains(
            event.position().toPoint()
        ):
            if event.type() == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton:
                self.lock_clicked.emit(index.row())
            return True  # a click on the lock neither renames nor toggles visibility
        return super().editorEvent(event, model, option, index)


# -- the list --------------------------------------------------------------------------------------
class LayerList(QListWidget):
    """A list whose rows can be dragged to a new place; it reports the move instead of making it."""

    row_moved = Signal(int, int)  # (row dragged, row it should end at), rows top first

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)

    def drop_row(self, pos: QPoint, source: int) -> int:
        """The row the dragged row ends at when dropped at a viewport position."""
        index = self.indexAt(pos)
        if not index.isValid():
            gap = self.count() if self.count() == 0 or pos.y() > self.visualItemRect(self.item(0)).top() else 0
        else:
            rect = self.visualRect(index)
            gap = index.row() + (1 if pos.y() >= rect.center().y() else 0)
        return gap - 1 if gap > source else gap

    def dropEvent(self, event: QDropEvent) -> None:
        source = self.currentRow()
        if not event.mimeData().hasFormat(ITEM_MODEL_MIME) or source < 0 or event.source() not in (self, None):
            event.ignore()
            return
        target = self.drop_row(event.position().toPoint(), source)
        # Tell the drag nothing moved, so the view does not remove or insert rows itself.
        event.setDropAction(Qt.DropAction.IgnoreAction)
        event.accept()
        self.stopAutoScroll()
        self.viewport().update()
        if target != source:
            self.row_moved.emit(source, target)
