"""Super-resolution: bicubic upsampling, then a diffusion model conditioned on it adds the detail."""

from __future__ import annotations

import numpy as np
from PIL import Image

from diffedit.diffusion import engine
from diffedit.diffusion.image_tasks import sample_conditioned
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult


def start_strength(run: engine.Run, start: str, strength: float) -> float:
    """1.0 to sample from noise; the strength to start part-way from the degraded input."""
    if start == "auto":
        start = run.manifest.start
    return 1.0 if start == "noise" else strength


def upsample(rgba: np.ndarray, scale: int) -> np.ndarray:
    img = Image.fromarray(rgba, "RGBA")
    return np.asarray(img.resize((img.width * scale, img.height * scale), Image.Resampling.BICUBIC))


@engine.guarded
def run_super_resolve(request: TaskRequest, context: RunContext) -> TaskResult:
    run = engine.start_run(request, context, ("super-resolve",))
    p = request.params
    factors = run.manifest.upscale_factors
    scale = p.scale or factors[0]
    if scale not in factors:
        choices = " or ".join(f"x{f}" for f in factors)
        raise engine.TaskError(f"the model upscales {choices}, not x{scale}; choose a x{scale} model or scale "
                               f"{' or '.join(map(str, factors))}")
    assert request.image is not None
    up = upsample(request.image, scale)
    strength = start_strength(run, p.start, p.strength)
    rgb = sample_conditioned(run, up, class_index=engine.task_class_index(run, f"x{scale}"), strength=strength,
                             tile=p.tile, overlap=p.overlap, prompt=p.prompt, negative_prompt=p.negative_prompt,
                             guidance_scale=p.guidance_scale, ensemble=p.ensemble)
    return TaskResult(record=engine.record(run, scale=scale, start_strength=strength),
                      image=engine.rgb_to_rgba(rgb, up[..., 3]), name=f"Super-resolved x{scale}", scale=scale,
                      canvas_size=(up.shape[1], up.shape[0]))
