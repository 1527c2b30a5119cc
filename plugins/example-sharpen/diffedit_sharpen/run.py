"""The sharpen task itself; imported only when the task runs."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from diffedit.document.records import GenerationRecord
from diffedit.tasks.base import RunContext, StepProgress, TaskRequest, TaskResult


def unsharp_mask(rgb: np.ndarray, radius: float, amount: float, threshold: int) -> np.ndarray:
    """Classic unsharp mask on float RGB in 0..255."""
    blurred = ndimage.gaussian_filter(rgb, sigma=(radius, radius, 0))
    detail = rgb - blurred
    if threshold:
        detail[np.abs(detail) < threshold] = 0
    return np.clip(rgb + amount * detail, 0, 255)


def run_sharpen(request: TaskRequest, context: RunContext) -> TaskResult:
    assert request.image is not None
    p = request.params
    context.cancel.raise_if_cancelled()
    rgb = request.image[..., :3].astype(np.float32)
    sharp = unsharp_mask(rgb, p.radius, p.amount, p.threshold)
    if request.mask is not None:
        weight = (request.mask.astype(np.float32) / 255)[..., None]
        sharp = rgb + (sharp - rgb) * weight
    out = request.image.copy()
    out[..., :3] = np.rint(sharp).astype(np.uint8)
    context.report(StepProgress(step=1, total=1))
    record = GenerationRecord(task="sharpen", params={"radius": p.radius, "amount": p.amount,
                                                      "threshold": p.threshold})
    return TaskResult(record=record, image=out, name="Sharpened")
