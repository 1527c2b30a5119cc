"""Inpainting and outpainting: a crop around the mask is sampled and blended back with a feathered
weight that is zero outside the mask, so pixels outside it stay exactly as they were."""

from __future__ import annotations

import numpy as np
import torch

from diffedit.diffusion import engine
from diffedit.diffusion.fill import smooth_fill
from diffedit.diffusion.image_tasks import (
    feathered_weight,
    from_model_space,
    generated_channels,
    mask_box,
    to_model_space,
)
from diffedit.diffusion.loop import known_region_blend
from diffedit.diffusion.tiling import crop_back, pad_to_multiple
from diffedit.document.masks import grow
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult

ACCEPTED = ("inpaint", "generate")


def _method(run: engine.Run, asked: str) -> str:
    conditioned_model = "inpaint" in run.manifest.served_tasks and run.manifest.mask_channel
    if asked == "auto":
        return "conditioned" if conditioned_model else "repaint"
    if asked == "conditioned" and not conditioned_model:
        raise engine.TaskError(f"the model in {run.model.path} is not an inpainting model (no mask input); "
                               "use method 'repaint' or an inpainting checkpoint")
    if asked == "repaint" and conditioned_model:
        return "conditioned+repaint"
    return asked


def inpaint_pixels(run: engine.Run, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Sample the masked area; returns an RGBA patch (alpha = blend weight) and its position."""
    p = run.request.params
    method = _method(run, p.method)
    multiple = engine.multiple_of(run.model)
    x0, y0, x1, y1 = mask_box(mask, p.context, multiple)
    crop_rgba, crop_mask = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    x = engine.image_to_tensor(crop_rgba, run.manifest.channels, run.device, run.dtype)
    m = engine.mask_to_tensor((crop_mask >= 128).astype(np.uint8) * 255, run.device, run.dtype)
    x_pad, box = pad_to_multiple(x, multiple)
    m_pad, _ = pad_to_multiple(m, multiple, mode="constant")
    known = to_model_space(run, _hole_condition(run, x_pad, m_pad) if "conditioned" in method else x_pad)
    f = engine.latent_factor(run.model)
    m_small = torch.nn.functional.max_pool2d(m_pad, f) if f > 1 else m_pad
    shape = (1, generated_channels(run), x_pad.shape[2] // f, x_pad.shape[3] // f)
    concat = torch.cat([known, m_small], dim=1) if "conditioned" in method else None
    class_index = engine.class_index_for(run, p.class_name) if p.class_name else engine.task_class_index(run, "inpaint")
    model_fn = engine.conditioned_model(run, concat=concat, class_index=class_index,
                                        prompt=p.prompt, negative_prompt=p.negative_prompt,
                                        guidance_scale=p.guidance_scale)
    noise = torch.randn(shape, generator=run.generator, dtype=run.dtype).to(run.device)
    blend = None
    if "repaint" in method:
        blend = known_region_blend(to_model_space(run, x_pad), m_small, noise)
    if p.resample > 1 and blend is None:
        raise engine.TaskError("resampling belongs to the repaint method; choose method 'repaint' or resample 1")
    try:
        z = engine.sample(run, model_fn, shape, noise=noise, blend=blend, resample=p.resample)
    except ValueError as exc:
        raise engine.TaskError(str(exc)) from None
    rgb = engine.tensor_to_rgb(crop_back(from_model_space(run, z), box))
    weight = feathered_weight(crop_mask, p.feather)
    return engine.rgb_to_rgba(rgb, np.rint(weight * 255).astype(np.uint8)), (x0, y0)


def _hole_condition(run: engine.Run, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The image the model is conditioned on: the hole zeroed (Palette, SD) or smoothly filled."""
    return smooth_fill(x, m) if run.manifest.hole_fill == "smooth" else x * (1 - m)


@engine.guarded
def run_inpaint(request: TaskRequest, context: RunContext) -> TaskResult:
    run = engine.start_run(request, context, ACCEPTED)
    assert request.image is not None and request.mask is not None
    patch, offset = inpaint_pixels(run, request.image, request.mask)
    return TaskResult(record=engine.record(run, method=_method(run, request.params.method)), image=patch,
                      offset=offset, name="Inpainted")


@engine.guarded
def run_outpaint(request: TaskRequest, context: RunContext) -> TaskResult:
    p = request.params
    if not (p.left or p.right or p.top or p.bottom):
        raise engine.TaskError("choose how many pixels to add on at least one side (left, right, top, bottom)")
    run = engine.start_run(request, context, ACCEPTED)
    assert request.image is not None
    h, w = request.image.shape[:2]
    canvas = np.zeros((h + p.top + p.bottom, w + p.left + p.right, 4), np.uint8)
    canvas[p.top : p.top + h, p.left : p.left + w] = request.image
    edge = _edge_fill(canvas, p.left, p.top, w, h)
    mask = np.full(canvas.shape[:2], 255, np.uint8)
    mask[p.top : p.top + h, p.left : p.left + w] = 0
    # the seam fades into the old image over `feather` pixels, so the new area itself is fully opaque
    mask = grow(mask, p.feather)
    patch, (px, py) = inpaint_pixels(run, edge, mask)
    layer = np.zeros_like(canvas)
    layer[py : py + patch.shape[0], px : px + patch.shape[1]] = patch
    return TaskResult(record=engine.record(run), image=layer, offset=(-p.left, -p.top), name="Outpainted",
                      canvas_size=(canvas.shape[1], canvas.shape[0]))


def _edge_fill(canvas: np.ndarray, left: int, top: int, w: int, h: int) -> np.ndarray:
    """Stretch the border pixels into the new area: a start that already matches the edge colours."""
    ys = np.clip(np.arange(canvas.shape[0]) - top, 0, h - 1) + top
    xs = np.clip(np.arange(canvas.shape[1]) - left, 0, w - 1) + left
    filled = canvas[ys][:, xs].copy()
    filled[..., 3] = 255
    return filled
