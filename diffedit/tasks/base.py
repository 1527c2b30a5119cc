"""What a task is, what a run gets and what it gives back. No torch here: plugins declare tasks with
these light descriptors and name the function that runs them as "module:function", imported only
when a task actually runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diffedit.document.records import GenerationRecord
from diffedit.tasks.cancel import CancelToken

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    """A task as the editor lists it. `runner` is "module:function" taking (TaskRequest, RunContext)."""

    name: str
    label: str
    description: str
    params: type  # a dataclass, see diffedit.tasks.params
    runner: str
    inputs: tuple[str, ...] = ()  # what it needs from the document: "image", "mask"
    output: str = "layer"  # "layer" (RGBA) or "mask"
    model_tasks: tuple[str, ...] = ()  # checkpoint manifest tasks this task can run
    needs_model: bool = True

    def load_runner(self) -> Callable[[TaskRequest, RunContext], TaskResult]:
        module_name, _, func = self.runner.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, func)  # type: ignore[no-any-return]


@dataclass
class TaskRequest:
    """Everything one run needs; built by the GUI or the CLI, passed to a worker thread."""

    task: str
    params: Any  # an instance of the task's Params dataclass
    model: str | None = None  # checkpoint folder
    image: np.ndarray | None = None  # (h, w, 4) uint8 RGBA, the document composite or a layer
    mask: np.ndarray | None = None  # (h, w) uint8, 255 = region to change
    device: str = "auto"
    precision: str = "auto"


@dataclass
class StepProgress:
    step: int  # steps done, 1-based
    total: int
    evaluations: int = 0  # model evaluations so far (Heun and friends make two per step)
    preview: np.ndarray | None = None  # (h, w, 4) uint8 of the predicted clean image, when cheap
    message: str = ""


@dataclass
class RunContext:
    """What the runner gives a task: cancellation and progress reporting."""

    cancel: CancelToken = field(default_factory=CancelToken)
    progress: Callable[[StepProgress], None] | None = None
    preview_every: int = 1
    samplers: dict[str, Any] = field(default_factory=dict)  # name -> SamplerInfo, from the registry
    model_loaders: dict[str, Any] = field(default_factory=dict)  # name -> ModelLoaderInfo, from the registry

    def report(self, progress: StepProgress) -> None:
        if self.progress is not None:
            self.progress(progress)


@dataclass
class TaskResult:
    """A finished run: an RGBA image (or a mask) for a new layer, placed at `offset`, with its record."""

    record: GenerationRecord
    image: np.ndarray | None = None  # (h, w, 4) uint8
    mask: np.ndarray | None = None  # (h, w) uint8
    offset: tuple[int, int] = (0, 0)
    name: str = ""
    canvas_size: tuple[int, int] | None = None  # outpainting grows the canvas to (w, h)
    scale: int = 1  # super-resolution: the canvas is scaled by this and the result is the whole new image
    notes: list[str] = field(default_factory=list)
