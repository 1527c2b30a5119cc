"""Segmentation: sample a one-channel image conditioned on the input, then threshold it into a mask."""

from __future__ import annotations

import numpy as np

from diffedit.diffusion import engine
from diffedit.diffusion.image_tasks import sample_conditioned
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult


@engine.guarded
def run_segment(request: TaskRequest, context: RunContext) -> TaskResult:
    run = engine.start_run(request, context, ("segment",))
    p = request.params
    assert request.image is not None
    grey = sample_conditioned(run, request.image, tile=p.tile)[..., 0]
    mask = grey if p.threshold <= 0 else np.where(grey >= p.threshold * 255, 255, 0).astype(np.uint8)
    return TaskResult(record=engine.record(run), mask=mask, name="Segmentation")
