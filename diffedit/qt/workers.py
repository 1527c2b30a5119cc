"""Task runs off the GUI thread: a worker per run on its own QThread, and a FIFO queue of runs.

The worker's signals are emitted from the worker thread; the queue relays them through objects that
live in the GUI thread, so everything the rest of the editor connects to arrives on the GUI thread
(where widgets may be touched and pytest-qt may wait). `thread.quit` is connected directly to the
worker's `done` signal (quit is thread-safe), which makes a later `thread.wait()` reliable.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from diffedit.tasks.base import RunContext, StepProgress, TaskRequest, TaskResult
from diffedit.tasks.cancel import Cancelled, CancelToken
from diffedit.tasks.registry import Registry
from diffedit.tasks.runner import run_task

# torch must not be imported by two threads at once (a half-initialised module can be seen);
# everything that may trigger the first heavy import in the background takes this lock.
HEAVY_IMPORT_LOCK = threading.Lock()
PREVIEW_INTERVAL_S = 0.1  # at most ~10 previews a second reach the GUI; the last step always does
_ids = itertools.count(1)
_orphans: list[tuple[QThread, QObject]] = []  # threads still running after a shutdown timed out


def error_text(exc: BaseException) -> str:
    """The user-facing line for an error: our own errors carry a clear message, others get their type."""
    if isinstance(exc, (ValueError, OSError, RuntimeError, LookupError)) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class TaskWorker(QObject):
    """Runs one request with `run_task`; lives in a worker thread once `moveToThread` is called."""

    progress = Signal(int, int, int, float)  # step, total, model evaluations, seconds since start
    preview = Signal(object)  # (h, w, 4) uint8 RGBA of the predicted clean image
    finished = Signal(object)  # TaskResult
    failed = Signal(str, str)  # message, details (traceback)
    cancelled = Signal()
    done = Signal()  # after any of the three above: the thread may stop

    def __init__(self, request: TaskRequest, registry: Registry, token: CancelToken | None = None,
                 preview_interval: float = PREVIEW_INTERVAL_S) -> None:
        super().__init__()
        self.request = request
        self.registry = registry
        self.token = token or CancelToken()
        self.preview_interval = preview_interval

    def cancel(self) -> None:
        """Thread-safe: the run stops before its next model evaluation."""
        self.token.cancel()

    @Slot()
    def run(self) -> None:
        start = time.monotonic()
        last_preview = [-1e9]

        def report(p: StepProgress) -> None:
            now = time.monotonic()
            self.progress.emit(p.step, p.total, p.evaluations, now - start)
            if p.preview is not None and (p.step >= p.total or now - last_preview[0] >= self.preview_interval):
                last_preview[0] = now
                self.preview.emit(np.array(p.preview, dtype=np.uint8, copy=True))

        try:
            self._import_runner()
            result = run_task(self.request, self.registry, RunContext(cancel=self.token, progress=report))
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # any failure becomes a message; the GUI must never go down with a run
            self.failed.emit(error_text(exc), traceback.format_exc())
        else:
            if self.token.cancelled:  # cancelled after the last step: the user still gets no result
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        finally:
            self.done.emit()

    def _import_runner(self) -> None:
        """Import the task's module (and so torch) under the heavy-import lock; errors surface in run_task."""
        spec = self.registry.tasks.get(self.request.task)
        if spec is None:
            return
        with HEAVY_IMPORT_LOCK, contextlib.suppress(Exception):
            spec.load_runner()  # on failure run_task loads it again and reports the error with its traceback


@dataclass(eq=False)
class RunJob:
    """One queued or running request; `data` is whatever the submitter wants back with the result."""

    request: TaskRequest
    registry: Registry
    label: str = ""
    data: Any = None
    token: CancelToken = field(default_factory=CancelToken)
    state: str = "queued"  # queued | running | finished | failed | cancelled
    id: int = field(default_factory=lambda: next(_ids))


class _Relay(QObject):
    """Lives in the GUI thread: receives one worker's queued signals and re-emits them on the queue."""

    def __init__(self, queue: RunQueue, job: RunJob) -> None:
        super().__init__()  # no parent and no deleteLater: PySide must own it (see RunQueue._drop_thread)
        self.queue, self.job = queue, job

    @Slot(int, int, int, float)
    def on_progress(self, step: int, total: int, evaluations: int, elapsed: float) -> None:
        if self.job.state == "running":
            self.queue.progress.emit(self.job, step, total, evaluations, elapsed)

    @Slot(object)
    def on_preview(self, pixels: np.ndarray) -> None:
        if self.job.state == "running" and not self.job.token.cancelled:
            self.queue.preview.emit(self.job, pixels)

    @Slot(object)
    def on_finished(self, result: TaskResult) -> None:
        if self.job.token.cancelled:  # Cancel was pressed while the result was on its way
            self.on_cancelled()
            return
        self.job.state = "finished"
        self.queue.finished.emit(self.job, result)

    @Slot(str, str)
    def on_failed(self, message: str, details: str) -> None:
        self.job.state = "failed"
        self.queue.failed.emit(self.job, message, details)

    @Slot()
    def on_cancelled(self) -> None:
        if self.job.state != "cancelled":
            self.job.state = "cancelled"
            self.queue.cancelled.emit(self.job)


class RunQueue(QObject):
    """Runs jobs one at a time, first in first out, each on a fresh QThread. All signals: GUI thread."""

    started = Signal(object)  # job
    progress = Signal(object, int, int, int, float)  # job, step, total, evaluations, elapsed seconds
    preview = Signal(object, object)  # job, RGBA array
    finished = Signal(object, object)  # job, TaskResult
    failed = Signal(object, str, str)  # job, message, details
    cancelled = Signal(object)  # job
    idle = Signal()  # the last thread has stopped and nothing is queued

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pending: deque[RunJob] = deque()
        self.current: RunJob | None = None
        self._thread: QThread | None = None
        self._worker: TaskWorker | None = None
        self._relay: _Relay | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None or bool(self.pending)

    def submit(self, request: TaskRequest, registry: Registry, label: str = "", data: Any = None) -> RunJob:
        job = RunJob(request, registry, label or request.task, data)
        self.pending.append(job)
        if self._thread is None:
            self._start_next()
        return job

    def cancel_current(self) -> None:
        """Stop the running job (within one sampler step); queued jobs then start as usual."""
        if self.current is not None:
            self.current.token.cancel()

    def cancel_all(self) -> None:
        """Drop every queued job and stop the running one."""
        while self.pending:
            job = self.pending.popleft()
            job.token.cancel()
            job.state = "cancelled"
            self.cancelled.emit(job)
        self.cancel_current()

    def threads_alive(self) -> int:
        """Worker threads still running, including any a timed-out shutdown had to leave behind."""
        threads = [t for t, _ in _orphans] + ([self._thread] if self._thread is not None else [])
        return sum(1 for t in threads if t.isRunning())

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel everything and wait for the thread; True when no thread is left running."""
        self.cancel_all()
        thread, worker = self._thread, self._worker
        if thread is None:
            return True
        stopped = thread.wait(timeout_ms)
        if not stopped:  # stuck in a model load: keep it referenced, a running QThread must not be deleted
            assert worker is not None
            _orphans.append((thread, worker))
        self._drop_thread()
        return stopped

    def _start_next(self) -> None:
        if not self.pending:
            self.idle.emit()
            return
        job = self.pending.popleft()
        job.state = "running"
        self.current = job
        thread = QThread()
        thread.setObjectName(f"diffedit-run-{job.id}")
        worker = TaskWorker(job.request, job.registry, job.token)
        worker.moveToThread(thread)
        relay = _Relay(self, job)
        worker.progress.connect(relay.on_progress)
        worker.preview.connect(relay.on_preview)
        worker.finished.connect(relay.on_finished)
        worker.failed.connect(relay.on_failed)
        worker.cancelled.connect(relay.on_cancelled)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker, self._relay = thread, worker, relay
        self.started.emit(job)
        thread.start()

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is None or self.sender() is not self._thread:
            return  # a thread that shutdown() already let go
        self._thread.wait()  # `finished` comes from inside the thread's last moments: let it end first
        self._drop_thread()
        self._start_next()

    def _drop_thread(self) -> None:
        # Plain Python references, dropped here: with deleteLater() pending, deleting the queue soon
        # after made PySide report "shared QObject was deleted directly" and crash.
        self._thread = self._worker = self._relay = None
        self.current = None
