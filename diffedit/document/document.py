"""The document: size, a stack of layers, the active layer, a selection, history and events.

Every change goes through a command on `history`, and every command reports what it changed through
`events`, so views repaint only what changed and undo restores exactly what was there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from diffedit.document import compositor
from diffedit.document.blend import BlendMode
from diffedit.document.geometry import Rect
from diffedit.document.history import Command, History, TileRecorder
from diffedit.document.layers import LAYER_PROPERTIES, Layer, MaskLayer, RasterLayer
from diffedit.document.projection import Projection
from diffedit.document.tiles import TiledSurface
from diffedit.events import Signal

MAX_DOCUMENT_SIDE = 32768


class DocumentEvents:
    """Signals a view connects to. Rectangles are in document coordinates."""

    def __init__(self) -> None:
        self.layers_changed = Signal()  # () the stack changed: added, removed, reordered
        self.layer_changed = Signal()  # (layer) a property changed: name, opacity, mode...
        self.pixels_changed = Signal()  # (layer, rect)
        self.selection_changed = Signal()  # (rect)
        self.active_changed = Signal()  # (layer or None)
        self.size_changed = Signal()  # (width, height) canvas resized or image scaled


class StackCommand(Command):
    """Replaces the layer list (add, delete, reorder, merge, flatten) and the active layer."""

    def __init__(self, doc: Document, text: str, after: list[Layer], active_after: Layer | None) -> None:
        self.text = text
        self.doc = doc
        self.before, self.active_before = list(doc.layers), doc.active
        self.after, self.active_after = after, active_after

    def _apply(self, layers: list[Layer], active: Layer | None) -> None:
        self.doc.layers[:] = layers
        self.doc._set_active_silently(active)
        self.doc.events.layers_changed.emit()
        self.doc.events.active_changed.emit(active)
        self.doc.events.pixels_changed.emit(None, self.doc.bounds)

    def redo(self) -> None:
        self._apply(self.after, self.active_after)

    def undo(self) -> None:
        self._apply(self.before, self.active_before)

    @property
    def nbytes(self) -> int:
        """Pixels of the layers only this step keeps alive (those not in the document now)."""
        live = set(map(id, self.doc.layers))
        kept = {id(la): la for la in self.before + self.after if id(la) not in live}
        return sum(la.surface.nbytes for la in kept.values())


class PropertyCommand(Command):
    """Sets one layer property (name, opacity, visible, locked, blend_mode, offset)."""

    def __init__(self, doc: Document, layer: Layer, prop: str, value: Any) -> None:
        if prop not in LAYER_PROPERTIES:
            raise ValueError(f"unknown layer property {prop!r}; expected one of {LAYER_PROPERTIES}")
        self.text = f"Change {prop.replace('_', ' ')} of {layer.name}"
        self.doc, self.layer, self.prop = doc, layer, prop
        self.old, self.new = getattr(layer, prop), value

    def _set(self, value: Any) -> None:
        old_bounds = self.layer.bounds
        setattr(self.layer, self.prop, value)
        self.doc.events.layer_changed.emit(self.layer)
        if self.prop != "name" and self.prop != "locked":
            self.doc.events.pixels_changed.emit(self.layer, old_bounds.union(self.layer.bounds))

    def redo(self) -> None:
        self._set(self.new)

    def undo(self) -> None:
        self._set(self.old)


class Document:
    """A layered image. Layers are ordered bottom first; masks are layers that are not composited."""

    def __init__(self, width: int, height: int, name: str = "Untitled", history_limit: int | None = None) -> None:
        if not (0 < width <= MAX_DOCUMENT_SIDE and 0 < height <= MAX_DOCUMENT_SIDE):
            raise ValueError(f"document size must be 1..{MAX_DOCUMENT_SIDE} px per side, got {width}x{height}")
        self.width, self.height, self.name = width, height, name
        self.path: str | None = None
        self.layers: list[Layer] = []
        self.active: Layer | None = None
        self.selection = TiledSurface(width, height, 1)
        self.events = DocumentEvents()
        self.history = History() if history_limit is None else History(history_limit)
        self.metadata: dict[str, Any] = {}
        self.projection = Projection()

    # -- basics ------------------------------------------------------------------------------
    @property
    def bounds(self) -> Rect:
        return Rect(0, 0, self.width, self.height)

    @property
    def raster_layers(self) -> list[RasterLayer]:
        return [la for la in self.layers if isinstance(la, RasterLayer)]

    @property
    def mask_layers(self) -> list[MaskLayer]:
        return [la for la in self.layers if isinstance(la, MaskLayer)]

    @property
    def has_selection(self) -> bool:
        return bool(self.selection.tiles)

    @property
    def modified(self) -> bool:
        return not self.history.is_clean()

    def index_of(self, layer: Layer) -> int:
        for i, la in enumerate(self.layers):
            if la is layer:
                return i
        raise ValueError(f"layer {layer.name!r} is not in this document")

    def layer_named(self, name: str) -> Layer:
        for la in self.layers:
            if la.name == name:
                return la
        raise KeyError(f"no layer named {name!r}")

    def set_active(self, layer: Layer | None) -> None:
        """Choose the layer that tools act on (not an undo step, as in other editors)."""
        if layer is not None:
            self.index_of(layer)
        self._set_active_silently(layer)
        self.events.active_changed.emit(layer)

    def _set_active_silently(self, layer: Layer | None) -> None:
        self.active = layer

    def composite(self, rect: Rect | None = None) -> np.ndarray:
        """Straight-alpha RGBA uint8 of the visible raster layers, whole or for one rectangle.

        Whole tiles are served from the projection cache; pieces of tiles are composited directly.
        """
        return self.projection.composite(self.layers, self.bounds if rect is None else rect, self.bounds)

    def unique_name(self, base: str) -> str:
        names = {la.name for la in self.layers}
        if base not in names:
            return base
        n = 2
        while f"{base} {n}" in names:
            n += 1
        return f"{base} {n}"

    # -- structure ---------------------------------------------------------------------------
    def _stack(self, text: str, after: list[Layer], active: Layer | None) -> None:
        self.history.execute(StackCommand(self, text, after, active))

    def add_layer(
        self, layer: Layer | None = None, index: int | None = None, name: str | None = None, activate: bool = True
    ) -> Layer:
        """Add a layer (a new empty raster layer by default) above the active one, or at `index`."""
        if layer is None:
            layer = RasterLayer.empty(self.width, self.height, self.unique_name(name or "Layer"))
        elif name:
            layer.name = name
        if index is None:
            index = self.index_of(self.active) + 1 if self.active is not None else len(self.layers)
        after = list(self.layers)
        after.insert(index, layer)
        self._stack(f"Add {layer.name}", after, layer if activate or self.active is None else self.active)
        return layer

    def add_raster(self, pixels: np.ndarray, name: str = "Layer", offset: tuple[int, int] = (0, 0)) -> RasterLayer:
        """Add a layer holding an (h, w, 4) RGBA uint8 array."""
        if pixels.ndim != 3 or pixels.shape[2] != 4 or pixels.dtype != np.uint8:
            raise ValueError(f"layer pixels must be an (h, w, 4) uint8 array, got {pixels.shape} {pixels.dtype}")
        layer = RasterLayer(name=self.unique_name(name), surface=TiledSurface.from_array(pixels), offset=offset)
        self.add_layer(layer)
        return layer

    def delete_layer(self, layer: Layer) -> None:
        i = self.index_of(layer)
        after = [la for la in self.layers if la is not layer]
        active = self.active
        if active is layer:
            active = after[min(i, len(after) - 1)] if after else None
        self._stack(f"Delete {layer.name}", after, active)

    def duplicate_layer(self, layer: Layer) -> Layer:
        copy = layer.clone(self.unique_name(f"{layer.name} copy"))
        self.add_layer(copy, index=self.index_of(layer) + 1)
        return copy

    def move_layer(self, layer: Layer, index: int) -> None:
        """Move a layer to position `index` of the stack (0 = bottom)."""
        if not 0 <= index < len(self.layers):
            raise IndexError(f"layer position must be 0..{len(self.layers) - 1}, got {index}")
        after = [la for la in self.layers if la is not layer]
        after.insert(index, layer)
        self._stack(f"Move {layer.name}", after, self.active)

    def set_property(self, layer: Layer, prop: str, value: Any) -> None:
        if prop == "blend_mode":
            value = BlendMode(value)
        if prop == "opacity" and not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"opacity must be between 0 and 1, got {value}")
        if getattr(layer, prop) == value:
            return
        self.history.execute(PropertyCommand(self, layer, prop, value))

    def rename_layer(self, layer: Layer, name: str) -> None:
        if not name.strip():
            raise ValueError("a layer name cannot be empty")
        self.set_property(layer, "name", name)

    def merge_down(self, layer: Layer) -> RasterLayer:
        """Composite a raster layer onto the raster layer below it; the result keeps the lower's settings."""
        i = self.index_of(layer)
        below = next((la for la in reversed(self.layers[:i]) if isinstance(la, RasterLayer)), None)
        if not isinstance(layer, RasterLayer) or below is None:
            raise ValueError(f"layer {layer.name!r} has no raster layer below it to merge into")
        area = below.bounds.union(layer.bounds) if layer.visible else below.bounds
        base = RasterLayer(name=below.name, surface=below.surface, offset=below.offset)
        pixels = compositor.composite([base, layer], area)
        merged = RasterLayer(
            name=below.name,
            surface=TiledSurface.from_array(pixels),
            opacity=below.opacity,
            visible=below.visible,
            offset=(area.x, area.y),
            blend_mode=below.blend_mode,
        )
        after = [merged if la is below else la for la in self.layers if la is not layer]
        self._stack(f"Merge {layer.name} down", after, merged)
        return merged

    def flatten(self) -> RasterLayer:
        """Replace all raster layers with one holding the composite; mask layers are kept."""
        flat = RasterLayer(name="Background", surface=TiledSurface.from_array(self.composite()))
        self._stack("Flatten image", [flat, *self.mask_layers], flat)
        return flat

    def resize_canvas(self, width: int, height: int, offset_x: int = 0, offset_y: int = 0) -> None:
        """One undo step: a width x height canvas, layers and selection moved by the offset."""
        from diffedit.document.canvas_ops import resize_canvas

        resize_canvas(self, width, height, offset_x, offset_y)

    def scale_image(self, size: float | tuple[int, int], resample: str = "lanczos") -> None:
        """One undo step: scale the document and its layers by a factor or to (width, height)."""
        from diffedit.document.canvas_ops import scale_image

        scale_image(self, size, resample)

    # -- pixels ------------------------------------------------------------------------------
    def _notify_for(self, target: Layer | None) -> Callable[[Rect], None]:
        if target is None:
            return self.events.selection_changed.emit
        layer = target
        return lambda rect: self.events.pixels_changed.emit(layer, rect.translated(*layer.offset))

    @contextmanager
    def edit_pixels(self, layer: Layer | None, text: str) -> Iterator[TileRecorder]:
        """Record the tiles an edit touches and make it one undo step (layer None = the selection).

        Call `recorder.touch(rect)` (layer coordinates) before writing each area.
        """
        if layer is not None:
            layer.ensure_editable()
        surface = self.selection if layer is None else layer.surface
        recorder = TileRecorder(surface)
        try:
            yield recorder
        except BaseException:
            for key, tile in recorder.before.items():  # leave the document as it was
                surface.set_tile(key, tile)
            raise
        command = recorder.command(text, self._notify_for(layer))
        if command is not None:
            self.history.execute(command)

    def replace_pixels(self, layer: Layer | None, pixels: np.ndarray, text: str, at: tuple[int, int] = (0, 0)) -> None:
        """Write an array into a layer (or the selection) as one undo step."""
        surface = self.selection if layer is None else layer.surface
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.shape[2] != surface.channels:
            raise ValueError(f"expected {surface.channels} channels, got {pixels.shape[2]}")
        with self.edit_pixels(layer, text) as rec:
            rec.touch(Rect(at[0], at[1], pixels.shape[1], pixels.shape[0]))
            surface.write(at[0], at[1], pixels)

    def _selection_in(self, layer: Layer) -> np.ndarray | None:
        """The selection over the layer's area (layer coordinates), or None when nothing is selected."""
        if not self.has_selection:
            return None
        return self.selection.read(layer.bounds)[..., 0]

    def _selected_area(self, layer: Layer) -> tuple[Rect, np.ndarray] | None:
        """The selection's bounding box in layer coordinates and the selection inside it."""
        box = self.selection.content_bounds().translated(-layer.offset[0], -layer.offset[1])
        box = box.intersect(layer.surface.bounds)
        if box.is_empty():
            return None
        return box, self.selection.read(box.translated(*layer.offset))[..., 0]

    def _edit_selected(self, layer: Layer, text: str, whole: Callable[[], None],
                       blend: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        """One undo step that changes the whole layer when nothing is selected, else only the
        selection's bounding box: `blend(pixels, selection)` returns the new pixels there."""
        with self.edit_pixels(layer, text) as rec:
            if not self.has_selection:
                rec.touch(layer.surface.bounds)
                whole()
                return
            area = self._selected_area(layer)
            if area is None:
                return
            box, sel = area
            rec.touch(box)
            layer.surface.write(box.x, box.y, blend(layer.surface.read(box), sel))

    def fill_layer(self, layer: Layer, color: Sequence[int] | int) -> None:
        """Fill the selection (or the whole layer) with a colour (a mask value for masks)."""
        value = np.asarray(color, np.uint8).reshape(-1)
        if value.size != layer.surface.channels:
            raise ValueError(f"layer {layer.name!r} takes {layer.surface.channels} values per pixel, got {value.size}")

        def blend(pixels: np.ndarray, sel: np.ndarray) -> np.ndarray:
            w = sel[..., None].astype(np.float32) / 255
            return np.rint(pixels * (1 - w) + value.astype(np.float32) * w).astype(np.uint8)

        self._edit_selected(layer, f"Fill {layer.name}", lambda: layer.surface.fill(tuple(value)), blend)

    def clear_layer(self, layer: Layer) -> None:
        """Clear the selection (or the whole layer) to transparent (to unmasked, for masks)."""

        def blend(pixels: np.ndarray, sel: np.ndarray) -> np.ndarray:
            pixels[..., -1] = np.rint(pixels[..., -1] * (1 - sel / 255)).astype(np.uint8)
            return pixels

        self._edit_selected(layer, f"Clear {layer.name}", layer.surface.clear, blend)

    def layer_from_selection(self, layer: Layer | None = None) -> RasterLayer:
        """A new layer holding the selected part of a raster layer (default: the active one)."""
        layer = layer or self.active
        if not isinstance(layer, RasterLayer):
            raise ValueError("choose a raster layer to copy the selection from")
        if not self.has_selection:
            raise ValueError("nothing is selected: make a selection first")
        pixels = layer.surface.to_array()
        sel = self._selection_in(layer)
        assert sel is not None
        pixels[..., 3] = np.rint(pixels[..., 3].astype(np.float32) * sel / 255).astype(np.uint8)
        new = RasterLayer(
            name=self.unique_name(f"{layer.name} selection"),
            surface=TiledSurface.from_array(pixels),
            offset=layer.offset,
            blend_mode=layer.blend_mode,
        )
        self.add_layer(new, index=self.index_of(layer) + 1)
        return new

    def selection_from_alpha(self, layer: Layer | None = None) -> None:
        """Select where a layer has content: alpha for raster layers, the value for masks."""
        layer = layer or self.active
        if layer is None:
            raise ValueError("there is no layer to take a selection from")
        alpha = np.zeros((self.height, self.width), np.uint8)
        area = layer.bounds.intersect(self.bounds)
        local = area.translated(-layer.offset[0], -layer.offset[1])
        alpha[area.slices()] = layer.surface.read(local)[..., -1]
        self.set_selection(alpha, f"Selection from {layer.name}")

    # -- selection and masks -------------------------------------------------------------------
    def set_selection(self, mask: np.ndarray, text: str = "Change selection") -> None:
        """Replace the selection with a document-sized uint8 mask, as one undo step."""
        if mask.shape[:2] != (self.height, self.width):
            raise ValueError(f"selection must be {self.width}x{self.height}, got {mask.shape[1]}x{mask.shape[0]}")
        with self.edit_pixels(None, text) as rec:
            rec.touch(self.bounds)
            self.selection.clear()
            self.selection.write(0, 0, np.ascontiguousarray(mask, np.uint8))

    def selection_array(self) -> np.ndarray:
        return self.selection.to_array()[..., 0]

    @property
    def inpaint_mask(self) -> MaskLayer | None:
        return next((m for m in self.mask_layers if m.role == "inpaint"), None)

    def ensure_inpaint_mask(self) -> MaskLayer:
        """The document's inpainting mask, created (as an undo step) on first use."""
        mask = self.inpaint_mask
        if mask is None:
            mask = MaskLayer.empty(self.width, self.height, "Inpaint mask", role="inpaint")
            self.add_layer(mask, index=len(self.layers), activate=False)
        return mask
