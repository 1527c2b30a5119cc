"""Format detection for the built-in model loader (no weights are read)."""

from __future__ import annotations

import os
from pathlib import Path


def is_diffedit_checkpoint(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / "diffedit.json").is_file()
