"""The Qt-free document model: layers, masks, brushes, history and files.

Names are loaded on first use (PEP 562), so importing a light submodule such as
`diffedit.document.atomic` does not pull in numpy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BlendMode": "diffedit.document.blend",
    "Document": "diffedit.document.document",
    "Rect": "diffedit.document.geometry",
    "Layer": "diffedit.document.layers",
    "LayerLockedError": "diffedit.document.layers",
    "MaskLayer": "diffedit.document.layers",
    "RasterLayer": "diffedit.document.layers",
    "GenerationRecord": "diffedit.document.records",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diffedit.document' has no attribute {name!r}")
