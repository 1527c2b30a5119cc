"""Restoration: a model conditioned on the degraded image (and on the degradation, when it knows it)."""

from __future__ import annotations

from diffedit_builtin_superres.run import start_strength

from diffedit.diffusion import engine
from diffedit.diffusion.image_tasks import sample_conditioned
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult


@engine.guarded
def run_restore(request: TaskRequest, context: RunContext) -> TaskResult:
    run = engine.start_run(request, context, ("restore",))
    p = request.params
    assert request.image is not None
    # the degradation when the model knows it, else "restore" (repair models: blind to noise vs JPEG),
    # else the null class
    class_index = engine.task_class_index(run, p.degradation, "restore")
    strength = start_strength(run, p.start, p.strength)
    rgb = sample_conditioned(run, request.image, class_index=class_index, strength=strength, tile=p.tile,
                             overlap=p.overlap, ensemble=p.ensemble)
    return TaskResult(record=engine.record(run, start_strength=strength),
                      image=engine.rgb_to_rgba(rgb, request.image[..., 3]), name="Restored")
