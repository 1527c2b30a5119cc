"""Undo history: every change to a document is a command that can be undone and redone.

Pixel changes keep only the tiles they touched (see `TilePatchCommand`), and the history drops its
oldest steps when it holds more memory than its limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from diffedit.document.geometry import Rect
from diffedit.document.tiles import TiledSurface, TileKey
from diffedit.events import Signal

DEFAULT_MEMORY_LIMIT = 512 * 1024 * 1024


class Command:
    """One undoable step. `redo` applies it (the history calls redo once when it is executed)."""

    text: str = ""

    def redo(self) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        """Memory this step keeps alive, for the history's memory limit."""
        return 0


class TilePatchCommand(Command):
    """Swaps the touched tiles of a surface between their before and after states.

    Only the 'other' state is stored: because history is linear, the surface always holds the
    state that is not stored, so undo and redo are both a swap and no tile is kept twice.
    """

    def __init__(
        self,
        text: str,
        surface: TiledSurface,
        before: dict[TileKey, np.ndarray | None],
        notify: Callable[[Rect], None],
    ) -> None:
        self.text = text
        self.surface = surface
        self._stored = before
        self._notify = notify

    def _swap(self) -> None:
        changed = Rect(0, 0, 0, 0)
        for key, stored in self._stored.items():
            current = self.surface.tile(key)
            self.surface.set_tile(key, stored)
            self._stored[key] = current
            changed = changed.union(self.surface.tile_rect(key))
        self._notify(changed)

    redo = _swap
    undo = _swap

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._stored.values() if t is not None)

    @property
    def changed_rect(self) -> Rect:
        box = Rect(0, 0, 0, 0)
        for key in self._stored:
            box = box.union(self.surface.tile_rect(key))
        return box


class TileRecorder:
    """Copies each tile of a surface the first time an edit touches it, to build a patch command."""

    def __init__(self, surface: TiledSurface) -> None:
        self.surface = surface
        self.before: dict[TileKey, np.ndarray | None] = {}

    def touch(self, rect: Rect) -> None:
        for key in self.surface.tile_keys(rect):
            if key not in self.before:
                tile = self.surface.tile(key)
                self.before[key] = None if tile is None else tile.copy()

    def changed_keys(self) -> list[TileKey]:
        """Keys whose content differs from the recorded state (edits may leave tiles unchanged)."""
        changed = []
        for key, old in self.before.items():
            new = self.surface.tile(key)
            if new is not None and not new.any():
                self.surface.set_tile(key, None)
                new = None
            if old is None and new is None:
                continue
            if old is not None and new is not None and np.array_equal(old, new):
                continue
            changed.append(key)
        return changed

    def command(self, text: str, notify: Callable[[Rect], None], reported: bool = False) -> TilePatchCommand | None:
        """The patch for the changes made since recording began, or None if nothing changed.

        `reported`: the edit already reported every change it made (a brush stroke reports each
        dab), so executing the command need not report its tiles again; undo and redo do.
        """
        keys = self.changed_keys()
        if not keys:
            return None
        # The command stores the before state; the surface keeps the after state (already applied).
        return _AppliedTilePatch(text, self.surface, {k: self.before[k] for k in keys}, notify, reported)


class _AppliedTilePatch(TilePatchCommand):
    """A patch whose after state is already on the surface, so the first redo does nothing."""

    def __init__(
        self,
        text: str,
        surface: TiledSurface,
        before: dict[TileKey, np.ndarray | None],
        notify: Callable[[Rect], None],
        reported: bool = False,
    ) -> None:
        super().__init__(text, surface, before, notify)
        self._applied = True
        self._reported = reported

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            if not self._reported:
                self._notify(self.changed_rect)
            return
        self._swap()


class History:
    """A linear undo/redo stack with a memory limit that drops the oldest steps."""

    def __init__(self, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self.memory_limit = memory_limit
        self._done: list[Command] = []
        self._undone: list[Command] = []
        self._dropped = 0  # how many of the oldest steps were dropped for memory
        self._clean_at: int | None = 0
        self.changed = Signal()

    # -- running commands ------------------------------------------------------------------
    def execute(self, command: Command) -> Command:
        """Apply a command and record it; any redo steps are discarded."""
        command.redo()
        self._done.append(command)
        if self._clean_at is not None and self._clean_at > self.position - 1:
            self._clean_at = None  # the clean state was in the discarded redo branch
        self._undone.clear()
        self._trim()
        self.changed.emit()
        return command

    def undo(self) -> bool:
        if not self._done:
            return False
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        self.changed.emit()
        return True

    def redo(self) -> bool:
        if not self._undone:
            return False
        command = self._undone.pop()
        command.redo()
        self._done.append(command)
        self.changed.emit()
        return True

    def goto(self, index: int) -> None:
        """Go to the state after `index` steps of `steps` (0 = before the first kept step).

        Views hear one `changed` at the end, however many steps the jump took.
        """
        if not 0 <= index <= len(self.steps):
            raise IndexError(f"history has {len(self.steps)} steps, cannot go to {index}")
        self.changed._blocked += 1
        try:
            while len(self._done) > index:
                self.undo()
            while len(self._done) < index:
                self.redo()
        finally:
            self.changed._blocked -= 1
        self.changed.emit()

    def merge_last(self, count: int, text: str) -> None:
        """Make the last `count` applied steps one step (say, creating a mask and its first stroke)."""
        if count < 2 or count > len(self._done):
            return
        commands = self._done[-count:]
        del self._done[-count:]
        merged = CompositeCommand(text, commands)
        self._done.append(merged)
        self.changed.emit()

    # -- inspection --------------------------------------------------------------------------
    @property
    def steps(self) -> list[str]:
        """Texts of all kept steps, oldest first: the done ones, then the undone ones."""
        return [c.text for c in self._done] + [c.text for c in reversed(self._undone)]

    @property
    def index(self) -> int:
        """How many of `steps` are applied."""
        return len(self._done)

    @property
    def position(self) -> int:
        """Absolute step count since the document was opened (for the clean mark)."""
        return self._dropped + len(self._done)

    def can_undo(self) -> bool:
        return bool(self._done)

    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._done) + sum(c.nbytes for c in self._undone)

    def mark_clean(self) -> None:
        self._clean_at = self.position
        self.changed.emit()

    def mark_modified(self) -> None:
        """No state is clean (a recovered document has unsaved work, though nothing to undo)."""
        self._clean_at = None
        self.changed.emit()

    def is_clean(self) -> bool:
        return self._clean_at == self.position

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
        self._dropped = 0
        self._clean_at = 0
        self.changed.emit()

    def _trim(self) -> None:
        total = self.nbytes
        while total > self.memory_limit and len(self._done) > 1:
            oldest = self._done.pop(0)
            total -= oldest.nbytes
            self._dropped += 1


class CompositeCommand(Command):
    """Several commands that undo and redo as one step."""

    def __init__(self, text: str, commands: Iterable[Command]) -> None:
        self.text = text
        self.commands = list(commands)

    def redo(self) -> None:
        for c in self.commands:
            c.redo()

    def undo(self) -> None:
        for c in reversed(self.commands):
            c.undo()

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.commands)
