"""The Layers dock: the stack top first, visibility, names, blend mode and opacity of the active layer.

Rows carry a thumbnail of the layer, refreshed lazily (at most every THUMB_INTERVAL_MS, only for the
layers whose pixels changed), a lock toggle at their right edge, and can be dragged to reorder the stack.

Every edit goes through the document (so it is undoable) and the list is redrawn from the document's
events, never patched by hand, so it cannot drift from what undo and redo do.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from diffedit.document.blend import BlendMode
from diffedit.document.document import Document
from diffedit.document.geometry import Rect
from diffedit.document.layers import Layer, MaskLayer, RasterLayer
from diffedit.qt.bindings import Connections
from diffedit.qt.layer_widgets import LOCK_ROLE, THUMB_SIZE, LayerDelegate, LayerList, ThumbnailCache

UID_ROLE = Qt.ItemDataRole.UserRole
THUMB_INTERVAL_MS = 300  # thumbnails follow painting at most this often


def blend_label(mode: BlendMode) -> str:
    return mode.value.replace("-", " ").capitalize()


class LayersPanel(QDockWidget):
    """A dock listing the layers of the current document; selecting a row makes that layer active."""

    error = Signal(str, str)  # (title, message) for the window to show

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Layers", parent)
        self.setObjectName("layers-panel")
        self.doc: Document | None = None
        self._conns = Connections()
        self._updating = False
        self.thumbnails = ThumbnailCache(THUMB_SIZE)
        self._dirty_thumbs: set[int] = set()
        self.thumb_timer = QTimer(self)
        self.thumb_timer.setSingleShot(True)
        self.thumb_timer.setInterval(THUMB_INTERVAL_MS)
        self.thumb_timer.timeout.connect(self.refresh_thumbnails)

        self.list = LayerList()
        self.list.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.delegate = LayerDelegate(self.list)
        self.list.setItemDelegate(self.delegate)
        self.delegate.lock_clicked.connect(self.toggle_lock)
        self.list.row_moved.connect(self.move_row)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentRowChanged.connect(self._on_current_row)

        self.mode_combo = QComboBox()
        for mode in BlendMode:
            self.mode_combo.addItem(blend_label(mode), mode.value)
        self.mode_combo.setToolTip("Blend mode of the active layer")
        self.mode_combo.activated.connect(self._on_mode_chosen)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setToolTip("Opacity of the active layer")
        self.opacity_label = QLabel("100%")
        self.opacity_label.setMinimumWidth(36)
        self.opacity_slider.valueChanged.connect(self._on_opacity_moved)
        self.opacity_slider.sliderReleased.connect(self._commit_opacity)

        props = QHBoxLayout()
        props.addWidget(self.mode_combo, 1)
        props.addWidget(self.opacity_slider, 1)
        props.addWidget(self.opacity_label)

        buttons = QHBoxLayout()
        self.add_button = self._button("+", "Add a new layer above the active one", self.add_layer)
        self.delete_button = self._button("−", "Delete the active layer", self.delete_layer)
        self.duplicate_button = self._button("Duplicate", "Duplicate the active layer", self.duplicate_layer)
        self.up_button = self._button("▲", "Move the active layer up", lambda: self.move_active(+1))
        self.down_button = self._button("▼", "Move the active layer down", lambda: self.move_active(-1))
        for b in (self.add_button, self.delete_button, self.duplicate_button, self.up_button, self.down_button):
            buttons.addWidget(b)
        buttons.addStretch(1)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(props)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.set_document(None)

    def _button(self, text: str, tip: str, slot: Callable[[], object]) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setMinimumWidth(28)
        button.clicked.connect(lambda: self._guard(f"Could not {tip[0].lower()}{tip[1:]}", slot))
        return button

    # -- document --------------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        self._conns.clear()
        self.doc = doc
        if doc is not None:
            self._conns.connect(doc.events.layers_changed, self._rebuild)
            self._conns.connect(doc.events.layer_changed, self._on_layer_changed)
            self._conns.connect(doc.events.active_changed, self._on_active_changed)
            self._conns.connect(doc.events.pixels_changed, self._on_pixels_changed)
            self._conns.connect(doc.events.size_changed, self._on_size_changed)
        self.thumbnails.clear()
        self._dirty_thumbs.clear()
        self.thumb_timer.stop()
        self._rebuild()

    def layer_at(self, row: int) -> Layer | None:
        """The layer shown in a row (row 0 is the top of the stack)."""
        if self.doc is None or not 0 <= row < len(self.doc.layers):
            return None
        return self.doc.layers[len(self.doc.layers) - 1 - row]

    def row_of(self, layer: Layer) -> int:
        assert self.doc is not None
        return len(self.doc.layers) - 1 - self.doc.index_of(layer)

    def _fill_item(self, item: QListWidgetItem, layer: Layer) -> None:
        item.setText(layer.name)
        item.setData(UID_ROLE, layer.uid)
        item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
        item.setData(LOCK_ROLE, layer.locked)
        item.setIcon(self.thumbnails.icon(layer))  # cached: a changed layer is redrawn by the timer
        lock = " — locked (click the padlock to unlock)" if layer.locked else ""
        if isinstance(layer, MaskLayer):
            kind = "inpainting mask" if layer.role == "inpaint" else "mask"
            item.setToolTip(f"{layer.name} ({kind}, not composited){lock}")
        else:
            item.setToolTip(f"{layer.name}{lock}")

    def _rebuild(self) -> None:
        self._updating = True
        try:
            self.list.clear()
            if self.doc is not None:
                flags = (
                    Qt.ItemFlag.ItemIsSelectable
                    | Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsEditable
                    | Qt.ItemFlag.ItemIsUserCheckable
                    | Qt.ItemFlag.ItemIsDragEnabled
                )
                for layer in reversed(self.doc.layers):
                    item = QListWidgetItem()
                    item.setFlags(flags)
                    self._fill_item(item, layer)
                    self.list.addItem(item)
        finally:
            self._updating = False
        self._on_active_changed(self.doc.active if self.doc else None)

    def _on_layer_changed(self, layer: Layer) -> None:
        item = self.list.item(self.row_of(layer))
        if item is not None:
            self._updating = True
            try:
                self._fill_item(item, layer)
            finally:
                self._updating = False
        if self.doc is not None and layer is self.doc.active:
            self._sync_properties()

    def _on_pixels_changed(self, layer: Layer | None, rect: Rect | None = None) -> None:
        """Note the layer as needing a new thumbnail; the timer redraws it later, once for many dabs."""
        if layer is None:
            return
        self._dirty_thumbs.add(layer.uid)
        if not self.thumb_timer.isActive():
            self.thumb_timer.start()

    def _on_size_changed(self, width: int = 0, height: int = 0) -> None:
        if self.doc is not None:
            self._dirty_thumbs.update(la.uid for la in self.doc.layers)
            if not self.thumb_timer.isActive():
                self.thumb_timer.start()

    def refresh_thumbnails(self) -> None:
        """Redraw the thumbnails of the layers whose pixels changed since the last refresh."""
        dirty, self._dirty_thumbs = self._dirty_thumbs, set()
        self.thumb_timer.stop()
        if self.doc is None:
            return
        self._updating = True
        try:
            for row, layer in enumerate(reversed(self.doc.layers)):
                if layer.uid in dirty:
                    self.thumbnails.forget(layer.uid)
                    item = self.list.item(row)
                    if item is not None:
                        item.setIcon(self.thumbnails.icon(layer))
        finally:
            self._updating = False

    def _on_active_changed(self, layer: Layer | None) -> None:
        self._updating = True
        try:
            self.list.setCurrentRow(self.row_of(layer) if layer is not None else -1)
        finally:
            self._updating = False
        self._sync_properties()

    def _sync_properties(self) -> None:
        """Show the active layer's blend mode and opacity, and enable what applies to it."""
        doc = self.doc
        layer = doc.active if doc is not None else None
        index = doc.index_of(layer) if doc is not None and layer is not None else -1
        self.mode_combo.setEnabled(isinstance(layer, RasterLayer))
        if isinstance(layer, RasterLayer):
            self.mode_combo.setCurrentIndex(self.mode_combo.findData(layer.blend_mode.value))
        self.opacity_slider.setEnabled(layer is not None)
        self.opacity_slider.blockSignals(True)
        self.opacity_slider.setValue(round((layer.opacity if layer else 1.0) * 100))
        self.opacity_slider.blockSignals(False)
        self.opacity_label.setText(f"{self.opacity_slider.value()}%")
        self.add_button.setEnabled(doc is not None)
        self.delete_button.setEnabled(layer is not None)
        self.duplicate_button.setEnabled(layer is not None)
        self.up_button.setEnabled(doc is not None and 0 <= index < len(doc.layers) - 1)
        self.down_button.setEnabled(index > 0)

    # -- user edits ------------------------------------------------------------------------------
    def _guard(self, title: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (ValueError, RuntimeError, IndexError) as exc:
            self.error.emit(title, str(exc))

    def _on_current_row(self, row: int) -> None:
        layer = self.layer_at(row)
        if not self._updating and self.doc is not None and layer is not None and layer is not self.doc.active:
            self.doc.set_active(layer)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        doc = self.doc
        layer = self.layer_at(self.list.row(item))
        if self._updating or doc is None or layer is None:
            return
        visible = item.checkState() == Qt.CheckState.Checked
        name = item.text().strip()
        if visible != layer.visible:
            self._guard("Could not change the visibility", lambda: doc.set_property(layer, "visible", visible))
        if name != layer.name:
            self._guard("Could not rename the layer", lambda: doc.rename_layer(layer, name))
        self._on_layer_changed(layer)  # put back what the document holds if an edit was refused

    def _on_mode_chosen(self, index: int) -> None:
        doc = self.doc
        layer = doc.active if doc else None
        if doc is not None and isinstance(layer, RasterLayer):
            mode = self.mode_combo.itemData(index)
            self._guard("Could not change the blend mode", lambda: doc.set_property(layer, "blend_mode", mode))

    def _on_opacity_moved(self, value: int) -> None:
        self.opacity_label.setText(f"{value}%")
        if not self.opacity_slider.isSliderDown():  # keys and clicks commit at once; drags on release
            self._commit_opacity()

    def _commit_opacity(self) -> None:
        doc = self.doc
        layer = doc.active if doc else None
        value = self.opacity_slider.value() / 100
        if doc is not None and layer is not None and abs(value - layer.opacity) > 1e-6:
            self._guard("Could not change the opacity", lambda: doc.set_property(layer, "opacity", value))

    def add_layer(self) -> None:
        if self.doc is not None:
            self.doc.add_layer()

    def delete_layer(self) -> None:
        if self.doc is not None and self.doc.active is not None:
            self.doc.delete_layer(self.doc.active)

    def duplicate_layer(self) -> None:
        if self.doc is not None and self.doc.active is not None:
            self.doc.duplicate_layer(self.doc.active)

    def toggle_lock(self, row: int) -> None:
        """Lock or unlock the layer in a row (one undo step)."""
        doc, layer = self.doc, self.layer_at(row)
        if doc is not None and layer is not None:
            self._guard("Could not lock the layer", lambda: doc.set_property(layer, "locked", not layer.locked))

    def move_row(self, source: int, target: int) -> None:
        """Move the layer shown in row `source` so that it shows in row `target` (one undo step)."""
        doc, layer = self.doc, self.layer_at(source)
        if doc is None or layer is None or not 0 <= target < len(doc.layers) or target == source:
            return
        self._guard("Could not move the layer", lambda: doc.move_layer(layer, len(doc.layers) - 1 - target))

    def move_active(self, step: int) -> None:
        """Move the active layer up (+1) or down (-1) the stack."""
        doc = self.doc
        if doc is None or doc.active is None:
            return
        index = doc.index_of(doc.active) + step
        if 0 <= index < len(doc.layers):
            doc.move_layer(doc.active, index)
