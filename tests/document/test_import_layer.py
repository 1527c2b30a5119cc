"""Importing an image file as a layer: one undo step, the canvas unchanged."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffedit.document.document import Document
from diffedit.document.imagefiles import ImageFileError
from diffedit.document.io import import_layer


def test_import_adds_one_layer_in_one_step(tmp_path: Path) -> None:
    doc = Document(20, 10)
    bg = doc.add_layer(name="Background")
    path = tmp_path / "cat.png"
    Image.fromarray(np.full((12, 30, 3), 77, np.uint8)).save(path)
    steps = doc.history.index
    layer, notes = import_layer(doc, path)
    assert doc.layers == [bg, layer] and doc.active is layer and layer.name == "cat"
    assert doc.history.index == steps + 1 and doc.history.steps[-1] == "Import cat"
    assert tuple(layer.surface.to_array()[0, 0]) == (77, 77, 77, 255) and (doc.width, doc.height) == (20, 10)
    assert any("larger than" in n for n in notes)
    doc.history.undo()
    assert doc.layers == [bg]


def test_import_of_a_broken_file_changes_nothing(tmp_path: Path) -> None:
    doc = Document(20, 10)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageFileError):
        import_layer(doc, bad)
    assert doc.history.steps == [] and doc.layers == []
