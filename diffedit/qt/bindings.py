"""Glue between the Qt-free document and Qt: pixel arrays as QImages, and tidy signal connections.

The document's signals are plain Python callbacks; a widget that outlives one document must drop its
connections to it, or a stale document would call into a widget that shows another one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap

from diffedit.document.geometry import Rect
from diffedit.events import Signal


class Connections:
    """Remembers (signal, slot) pairs made on a document so they can all be undone at once."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Signal, Callable[..., Any]]] = []

    def connect(self, signal: Signal, slot: Callable[..., Any]) -> None:
        signal.connect(slot)
        self._pairs.append((signal, slot))

    def clear(self) -> None:
        for signal, slot in self._pairs:
            with contextlib.suppress(ValueError):  # already disconnected by someone else
                signal.disconnect(slot)
        self._pairs.clear()


def rgba_to_qimage(pixels: np.ndarray, premultiplied: bool = False) -> QImage:
    """A QImage owning a copy of an (h, w, 4) uint8 RGBA array (straight alpha unless premultiplied)."""
    pixels = np.ascontiguousarray(pixels, np.uint8)
    h, w = pixels.shape[:2]
    fmt = QImage.Format.Format_RGBA8888_Premultiplied if premultiplied else QImage.Format.Format_RGBA8888
    # QImage does not own a borrowed buffer; copy() detaches it before `pixels` can be freed.
    return QImage(pixels.data, w, h, w * 4, fmt).copy()


def qimage_to_rgba(image: QImage) -> np.ndarray:
    """An (h, w, 4) uint8 straight-alpha RGBA copy of any QImage (used by tests and thumbnails)."""
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = img.height(), img.width()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def blit(target: QImage, rect: Rect, pixels: np.ndarray, premultiplied: bool = False) -> None:
    """Replace a rectangle of `target` with RGBA pixels (no blending: transparent stays transparent)."""
    part = rgba_to_qimage(pixels, premultiplied)
    painter = QPainter(target)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
    painter.drawImage(rect.x, rect.y, part)
    painter.end()


def checkerboard(cell: int = 8, light: str = "#d6d6d6", dark: str = "#a8a8a8") -> QPixmap:
    """A 2x2-cell tile for a brush that shows transparency, at a fixed size on screen."""
    tile = QPixmap(cell * 2, cell * 2)
    tile.fill(QColor(light))
    painter = QPainter(tile)
    painter.fillRect(0, 0, cell, cell, QColor(dark))
    painter.fillRect(cell, cell, cell, cell, QColor(dark))
    painter.end()
    return tile


def color_swatch(color: QColor, size: int = 16) -> QPixmap:
    """A small square of a colour with a thin frame, for buttons and list icons."""
    pix = QPixmap(size, size)
    pix.fill(color)
    painter = QPainter(pix)
    painter.setPen(QColor(Qt.GlobalColor.black))
    painter.drawRect(0, 0, size - 1, size - 1)
    painter.end()
    return pix
