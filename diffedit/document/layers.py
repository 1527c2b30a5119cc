"""Layers: raster layers that are composited, and single-channel mask layers that are not."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from diffedit.document.blend import BlendMode
from diffedit.document.geometry import Rect
from diffedit.document.records import GenerationRecord
from diffedit.document.tiles import TiledSurface

_ids = itertools.count(1)

# Property names a LayerPropertyCommand may change, with the type each must have.
LAYER_PROPERTIES = ("name", "opacity", "visible", "locked", "blend_mode", "offset")


class LayerLockedError(RuntimeError):
    """Raised when pixels of a locked layer would change."""


@dataclass(eq=False)
class Layer:
    """State shared by all layers. Pixels live in `surface`, in layer-local coordinates."""

    name: str
    surface: TiledSurface
    opacity: float = 1.0
    visible: bool = True
    locked: bool = False
    offset: tuple[int, int] = (0, 0)
    record: GenerationRecord | None = None
    uid: int = field(default_factory=lambda: next(_ids))

    @property
    def width(self) -> int:
        return self.surface.width

    @property
    def height(self) -> int:
        return self.surface.height

    @property
    def bounds(self) -> Rect:
        """Where the layer lies in document coordinates."""
        return Rect(self.offset[0], self.offset[1], self.width, self.height)

    def ensure_editable(self) -> None:
        if self.locked:
            raise LayerLockedError(f"layer {self.name!r} is locked; unlock it to change its pixels")

    def clone(self, name: str | None = None) -> Layer:
        raise NotImplementedError


@dataclass(eq=False)
class RasterLayer(Layer):
    """An RGBA 8-bit (straight alpha) layer with a blend mode."""

    blend_mode: BlendMode = BlendMode.NORMAL

    @classmethod
    def empty(cls, width: int, height: int, name: str = "Layer") -> RasterLayer:
        return cls(name=name, surface=TiledSurface(width, height, 4))

    def clone(self, name: str | None = None) -> RasterLayer:
        return RasterLayer(
            name=name or f"{self.name} copy",
            surface=self.surface.copy(),
            opacity=self.opacity,
            visible=self.visible,
            locked=self.locked,
            offset=self.offset,
            record=self.record,
            blend_mode=self.blend_mode,
        )


@dataclass(eq=False)
class MaskLayer(Layer):
    """A single-channel 8-bit mask (255 = masked). The inpainting mask is one with role 'inpaint'."""

    role: str = ""
    color: tuple[int, int, int] = (255, 0, 64)

    @classmethod
    def empty(cls, width: int, height: int, name: str = "Mask", role: str = "") -> MaskLayer:
        return cls(name=name, surface=TiledSurface(width, height, 1), role=role)

    def clone(self, name: str | None = None) -> MaskLayer:
        return MaskLayer(
            name=name or f"{self.name} copy",
            surface=self.surface.copy(),
            opacity=self.opacity,
            visible=self.visible,
            locked=self.locked,
            offset=self.offset,
            record=self.record,
            role="",
            color=self.color,
        )
