"""Cooperative cancellation, checked by the denoise loop once per step."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised inside a run when its token was cancelled; the run leaves no result behind."""


class CancelToken:
    """Thread-safe flag: the GUI thread cancels, the worker checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("the run was cancelled")
