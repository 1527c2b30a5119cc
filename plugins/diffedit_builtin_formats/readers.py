"""Readers and writers named by the built-in formats plugin (imported only when used)."""

from __future__ import annotations

import os

from diffedit.document.document import Document
from diffedit.document.io import export_image, open_document, save_document


def open_as_document(path: str | os.PathLike[str]) -> Document:
    return open_document(path).document


def save_ora(doc: Document, path: str | os.PathLike[str]) -> None:
    save_document(doc, path)


def export_flat(doc: Document, path: str | os.PathLike[str]) -> None:
    export_image(doc, path)
