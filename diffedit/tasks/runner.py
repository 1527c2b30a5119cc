"""Running one task request: checks common to every task, seed choice, and error translation.

The GUI's worker thread and the CLI both call `run_task`; it never touches Qt or the document.
"""

from __future__ import annotations

import dataclasses
import secrets

import numpy as np

from diffedit.tasks.base import RunContext, TaskRequest, TaskResult, TaskSpec
from diffedit.tasks.registry import Registry


class TaskInputError(ValueError):
    """The request cannot run as given (missing image, bad mask...); the message says what to fix."""


def validate_inputs(spec: TaskSpec, request: TaskRequest) -> None:
    if spec.needs_model and not request.model:
        raise TaskInputError(f"task '{spec.name}' needs a model: give a checkpoint folder (--model DIR)")
    if "image" in spec.inputs:
        if request.image is None:
            raise TaskInputError(f"task '{spec.name}' needs an input image (--image FILE)")
        if request.image.ndim != 3 or request.image.shape[2] != 4 or request.image.dtype != np.uint8:
            raise TaskInputError(f"the input image must be RGBA 8-bit, got {request.image.shape} {request.image.dtype}")
    if "mask" in spec.inputs:
        if request.mask is None:
            raise TaskInputError(f"task '{spec.name}' needs a mask: paint one, or give --mask FILE")
        if request.image is not None and request.mask.shape[:2] != request.image.shape[:2]:
            mh, mw = request.mask.shape[:2]
            ih, iw = request.image.shape[:2]
            raise TaskInputError(f"the mask is {mw}x{mh} but the image is {iw}x{ih}; they must be the same size")
        if not (request.mask >= 128).any():
            raise TaskInputError("the mask is empty: paint the area to change with the mask brush first")


def resolve_seed(request: TaskRequest) -> TaskRequest:
    """Give the request an explicit seed (recorded in the result) when none was chosen."""
    params = request.params
    if hasattr(params, "seed") and params.seed is None:
        params = dataclasses.replace(params, seed=secrets.randbelow(2**31))
        request = dataclasses.replace(request, params=params)
    return request


def run_task(request: TaskRequest, registry: Registry, context: RunContext | None = None) -> TaskResult:
    """Validate and run a request; raises TaskInputError, Cancelled or the task's own clear errors."""
    spec = registry.tasks.get(request.task)
    if spec is None:
        known = ", ".join(sorted(registry.tasks)) or "none (no task plugins are loaded)"
        raise TaskInputError(f"unknown task '{request.task}'; available tasks: {known}")
    if not isinstance(request.params, spec.params):
        raise TaskInputError(f"task '{spec.name}' takes {spec.params.__name__}, got {type(request.params).__name__}")
    validate_inputs(spec, request)
    request = resolve_seed(request)
    context = context or RunContext()
    if not context.samplers:
        context.samplers = dict(registry.samplers)
    if not context.model_loaders:
        context.model_loaders = dict(registry.model_loaders)
    context.cancel.raise_if_cancelled()
    return spec.load_runner()(request, context)
