"""The generate task (imported when it runs)."""

from __future__ import annotations

from diffedit.diffusion import engine
from diffedit.diffusion.image_tasks import from_model_space, generated_channels
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult


@engine.guarded
def run_generate(request: TaskRequest, context: RunContext) -> TaskResult:
    run = engine.start_run(request, context, ("generate",))
    p = request.params
    size = run.manifest.image_size
    width, height = p.width or size, p.height or size
    multiple = engine.multiple_of(run.model)
    if width % multiple or height % multiple:
        raise engine.TaskError(f"width and height must be multiples of {multiple} for this model, "
                               f"got {width}x{height}")
    f = engine.latent_factor(run.model)
    model_fn = engine.conditioned_model(run, class_index=engine.class_index_for(run, p.class_name),
                                        prompt=p.prompt, negative_prompt=p.negative_prompt,
                                        guidance_scale=p.guidance_scale)
    z = engine.sample(run, model_fn, (1, generated_channels(run), height // f, width // f))
    image = engine.rgb_to_rgba(engine.tensor_to_rgb(from_model_space(run, z)))
    label = p.class_name or p.prompt[:40] or "Generated"
    return TaskResult(record=engine.record(run, width=width, height=height), image=image, name=label)
