"""A smooth fill of masked holes (push-pull over an image pyramid), fast on any size.

Why: a residual inpainting model corrects a start image instead of inventing the hole from zeros;
the closer that start is to the answer, the less the small model must learn. Push-pull interpolates
the hole from its border, and a few smoothing passes per pyramid level relax it toward the harmonic
(Laplace) fill, which continues a ramp across a hole within 1 % (plain push-pull: 10 %). It is cheap
enough for training to build on the fly, and the inpaint task builds exactly the same one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F  # noqa: N812 (the usual name)

SMOOTHING_PASSES = 4  # per pyramid level: a multigrid-style relaxation, cheap at every size


def smooth_fill(x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """`x` (B, C, H, W) with the pixels where `hole` (B, 1, H, W) is 1 replaced by a smooth fill.

    Pixels outside the hole are returned exactly. A batch row whose hole covers everything comes back
    as zeros (there is nothing to interpolate from).
    """
    known = (hole < 0.5).to(x.dtype)
    values, weights = [x * known], [known]
    while min(values[-1].shape[-2:]) > 1:
        values.append(F.avg_pool2d(values[-1], 2, ceil_mode=True))
        weights.append(F.avg_pool2d(weights[-1], 2, ceil_mode=True))
    # the ratio of two pooled sums is a weighted mean, whatever divisor the pooling used at the borders
    filled = values[-1] / weights[-1].clamp_min(1e-8)
    for v, w in zip(reversed(values[:-1]), reversed(weights[:-1]), strict=True):
        coarse = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
        confidence = w.clamp(0.0, 1.0)
        estimate = v / w.clamp_min(1e-8)
        filled = confidence * estimate + (1.0 - confidence) * coarse
        for _ in range(SMOOTHING_PASSES):  # relax toward the harmonic (Laplace) fill at this level
            neighbours = F.avg_pool2d(F.pad(filled, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
            filled = confidence * estimate + (1.0 - confidence) * neighbours
    return torch.where(known.bool(), x, filled)
