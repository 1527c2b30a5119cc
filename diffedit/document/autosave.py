"""Autosave to recovery files, and finding the ones a crash left behind.

The editor calls `Autosaver.tick()` from a timer; the core decides when a write is due, so the same
logic serves the GUI and the tests without Qt.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from diffedit.document.atomic import atomic_write_bytes
from diffedit.document.document import Document
from diffedit.document.ora import ora_bytes


def recovery_dir() -> Path:
    """Where recovery files live: DIFFEDIT_RECOVERY_DIR, else the user state folder."""
    env = os.environ.get("DIFFEDIT_RECOVERY_DIR")
    if env:
        return Path(env)
    from platformdirs import user_state_dir

    return Path(user_state_dir("diffedit")) / "recovery"


@dataclass
class RecoveryFile:
    path: Path  # the .ora holding the unsaved work
    original_path: str | None
    name: str
    saved_at: float


class Autosaver:
    """Writes a recovery .ora when the document changed and `interval` seconds have passed."""

    def __init__(
        self,
        doc: Document,
        interval: float = 120.0,
        directory: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.doc, self.interval, self.clock = doc, interval, clock
        self.directory = directory or recovery_dir()
        self.key = uuid.uuid4().hex[:12]
        self._last_write = clock()
        # Any history change (edit, undo, redo) makes the recovery file stale. A step count alone is
        # not enough: undo then a new edit returns to the same count with different pixels.
        self._stale = doc.modified
        doc.history.changed.connect(self._history_changed)

    def _history_changed(self) -> None:
        self._stale = True

    @property
    def path(self) -> Path:
        return self.directory / f"{self.key}.ora"

    def tick(self) -> Path | None:
        """Write a recovery file if one is due; returns its path when written."""
        if self.clock() - self._last_write < self.interval:
            return None
        if not self.doc.modified or not self._stale:
            return None
        return self.write_now()

    def write_now(self) -> Path:
        atomic_write_bytes(self.path, ora_bytes(self.doc))
        meta = {"original_path": self.doc.path, "name": self.doc.name, "saved_at": time.time()}
        atomic_write_bytes(self.path.with_suffix(".json"), json.dumps(meta).encode())
        self._last_write = self.clock()
        self._stale = False
        return self.path

    def discard(self) -> None:
        """Remove the recovery files (after a clean save or close)."""
        for p in (self.path, self.path.with_suffix(".json")):
            p.unlink(missing_ok=True)


def find_recovery_files(directory: Path | None = None) -> list[RecoveryFile]:
    """Recovery files left by sessions that did not close cleanly, newest first."""
    directory = directory or recovery_dir()
    found = []
    for ora in directory.glob("*.ora") if directory.is_dir() else []:
        meta: dict = {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(ora.with_suffix(".json").read_text())
        found.append(
            RecoveryFile(
                path=ora,
                original_path=meta.get("original_path"),
                name=str(meta.get("name", ora.stem)),
                saved_at=float(meta.get("saved_at", ora.stat().st_mtime)),
            )
        )
    return sorted(found, key=lambda r: r.saved_at, reverse=True)
