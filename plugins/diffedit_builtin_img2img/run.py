"""The img2img task: SDEdit from the input image, optionally conditioned on it (paired models)."""

from __future__ import annotations

from diffedit.diffusion import engine
from diffedit.diffusion.image_tasks import condition_from_image, from_model_space, generated_channels, to_model_space
from diffedit.diffusion.tiling import crop_back, pad_to_multiple
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult


@engine.guarded
def run_img2img(request: TaskRequest, context: RunContext) -> TaskResult:
    run = engine.start_run(request, context, ("generate", "img2img"))
    p = request.params
    assert request.image is not None
    x = engine.image_to_tensor(request.image, run.manifest.channels, run.device, run.dtype)
    padded, box = pad_to_multiple(x, engine.multiple_of(run.model))
    init = to_model_space(run, padded)
    concat = None
    if run.manifest.conditioning == "concat" or run.manifest.condition_channels:
        padded_rgba = engine.rgb_to_rgba(engine.tensor_to_rgb(padded))
        concat = condition_from_image(run, padded_rgba)
    model_fn = engine.conditioned_model(run, concat=concat, class_index=engine.class_index_for(run, p.class_name),
                                        prompt=p.prompt, negative_prompt=p.negative_prompt,
                                        guidance_scale=p.guidance_scale)
    shape = (1, generated_channels(run), *init.shape[2:])
    z = engine.sample(run, model_fn, shape, init=init, strength=p.strength)
    rgb = engine.tensor_to_rgb(crop_back(from_model_space(run, z), box))
    return TaskResult(record=engine.record(run), image=engine.rgb_to_rgba(rgb, request.image[..., 3]),
                      name="Image to image")
