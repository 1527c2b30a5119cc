"""The Qt-free document model: layers, masks, brushes, history and files."""

from diffedit.document.blend import BlendMode
from diffedit.document.document import Document
from diffedit.document.geometry import Rect
from diffedit.document.layers import Layer, LayerLockedError, MaskLayer, RasterLayer
from diffedit.document.records import GenerationRecord

__all__ = ["BlendMode", "Document", "GenerationRecord", "Layer", "LayerLockedError", "MaskLayer", "RasterLayer", "Rect"]
