"""From examples to the UNet's input and target: the conditioning each task runner feeds at sampling
time, built the same way here, and the DDPM objective for the scheduler's prediction type.

Where each condition comes from at sampling (so a change there must change this file):
- inpaint (diffedit_builtin_inpaint.run.inpaint_pixels): concat [to_model_space(x * (1 - m)), m],
  m binary, max-pooled to latent size for latent models;
- super-resolve / restore / segment (image_tasks.sample_conditioned): concat to_model_space(the
  upsampled / degraded / input image), reduced to one grey channel when condition_channels is 1;
- class: `class_labels`, the null class (len(class_names)) for unconditioned rows (CFG);
- text: `encoder_hidden_states` of the frozen encoder; "" is the unconditioned prompt (CFG).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffedit.diffusion.models import Manifest
from diffedit.training import degrade
from diffedit.training.config import LOSSES
from diffedit.training.data import Example

_LUMA = (0.299, 0.587, 0.114)
RESIDUAL_LAST_STEP_SHARE = 1 / 2
# How the per-example squared errors become one number. "mse" averages them; "log-mse" averages their
# logarithms, i.e. it maximises the mean PSNR, which is what users see and the benchmarks report: with
# "mse" an example at sigma 50 (error ~5x larger) outweighs one at sigma 15 or at x2, and a multi-task
# model neglects its easy, low-error cases. LOG_MSE_FLOOR (~46 dB on [-1, 1]) stops near-perfect
# examples (flat patches) from taking over.
LOG_MSE_FLOOR = 1e-4


@dataclass
class Batch:
    """Pixels in [-1, 1] on the CPU: the target, the pixel-space condition, the inpaint mask (0/1)."""

    x: torch.Tensor
    concat: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    captions: list[str] | None = None


def _pixels(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (h, w, c) images -> (B, c, h, w) in [-1, 1], exactly as engine.image_to_tensor scales them."""
    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def _grey(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def make_batch(examples: Sequence[Example], manifest: Manifest, rng: np.random.Generator) -> Batch:
    """The task's target and condition for each example, degradations drawn from `rng`."""
    task, n = manifest.task, len(examples)
    from diffedit.training import repair  # it builds on this module

    if repair.is_repair(manifest):
        x, concat, mask, labels = repair.repair_tensors([e.image for e in examples], rng)
        return Batch(x, concat, mask, labels)
    images = [e.image for e in examples]
    labels = [e.label for e in examples]
    concat = mask = None
    if task == "segment":
        assert all(e.mask is not None for e in examples)
        x = _pixels([e.mask[..., None] for e in examples])  # type: ignore[index]
        concat = _pixels(images)
    elif task == "inpaint":
        x = _pixels(images)
        mask = torch.from_numpy(np.stack([degrade.brush_mask(x.shape[-1], rng) for _ in range(n)]))
        mask = (mask[:, None] >= 128).float()
    elif task == "super-resolve":
        x = _pixels(images)
        concat = _pixels([degrade.super_resolve_condition(im, manifest.scale_factor) for im in images])
    elif task == "restore":
        x = _pixels(images)
        pairs = [degrade.restore_degradation(im, rng) for im in images]
        concat = _pixels([p[0] for p in pairs])
        if manifest.conditioning == "class":
            labels = [p[1] for p in pairs]
    elif task == "generate":
        x = _pixels(images)
    else:
        raise ValueError(f"training the '{task}' task is not supported")
    if concat is not None and not manifest.latent and manifest.condition_channels == 1 and concat.shape[1] == 3:
        concat = _grey(concat)
    label_tensor = torch.tensor(labels) if manifest.conditioning == "class" else None
    captions = [e.caption for e in examples] if manifest.conditioning == "text" else None
    return Batch(x, concat, mask, label_tensor, captions)


def encode(vae: Any, x: torch.Tensor) -> torch.Tensor:
    """Pixels -> latents exactly as engine.encode_latents does (the mean, times scaling_factor)."""
    with torch.no_grad():
        return vae.encode(x).latent_dist.mean * vae.config.scaling_factor


def model_space(batch: Batch, vae: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x0, concatenated condition) in the space the UNet works in, on `device`."""
    x = batch.x.to(device)
    to_space = (lambda t: encode(vae, t)) if vae is not None else (lambda t: t)
    x0 = to_space(x)
    if batch.mask is not None and batch.concat is not None:  # repair: the degraded image, its hole mask
        return x0, torch.cat([to_space(batch.concat.to(device)), batch.mask.to(device)], dim=1)
    if batch.mask is not None:
        m = batch.mask.to(device)
        known = to_space(x * (1 - m))
        factor = x.shape[-1] // x0.shape[-1]
        m_small = torch.nn.functional.max_pool2d(m, factor) if factor > 1 else m
        return x0, torch.cat([known, m_small], dim=1)
    if batch.concat is not None:
        return x0, to_space(batch.concat.to(device))
    return x0, None


def target_for(scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet must predict, per the scheduler's prediction_type."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    if kind == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {kind!r}")


def condition_kwargs(batch: Batch, manifest: Manifest, text_encoder: Any, device: torch.device,
                     dropout: float, gen: torch.Generator) -> dict[str, Any]:
    """class_labels / encoder_hidden_states, with rows dropped to the null condition for CFG."""
    n = batch.x.shape[0]
    drop = torch.rand(n, generator=gen) < dropout
    if manifest.conditioning == "class":
        assert batch.labels is not None and manifest.null_class is not None
        labels = torch.where(drop, torch.full_like(batch.labels, manifest.null_class), batch.labels)
        return {"class_labels": labels.to(device)}
    if manifest.conditioning == "text":
        assert batch.captions is not None and text_encoder is not None
        prompts = ["" if d else c for c, d in zip(batch.captions, drop.tolist(), strict=True)]
        return {"encoder_hidden_states": text_encoder.encode(prompts).to(device)}
    return {}


def diffusion_loss(unet: Any, scheduler: Any, x0: torch.Tensor, cond: torch.Tensor | None,
                   kwargs: dict[str, Any], gen: torch.Generator,
                   timesteps: torch.Tensor | None = None, residual: bool = False, loss: str = "mse") -> torch.Tensor:
    """Mean squared error of the UNet's prediction at random timesteps (noise drawn from `gen`).

    `loss`: one of LOSSES; "log-mse" averages the logarithm of each example's mean squared error.

    `residual`: the UNet's output is added to the image condition (Manifest.residual), and half of
    the timesteps are the last one, where the prediction is the one-step estimate a user sees first.
    """
    noise = torch.randn(x0.shape, generator=gen).to(x0)
    if timesteps is None:
        n_t = scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, n_t, (x0.shape[0],), generator=gen)
        if residual:
            timesteps = torch.where(torch.rand(x0.shape[0], generator=gen) < RESIDUAL_LAST_STEP_SHARE,
                                    torch.full_like(timesteps, n_t - 1), timesteps)
    t = timesteps.to(x0.device)
    xt = scheduler.add_noise(x0, noise, t)
    inp = torch.cat([xt, cond.to(xt)], dim=1) if cond is not None else xt
    pred = unet(inp, t, **kwargs).sample
    if residual:
        assert cond is not None
        pred = pred + cond[:, : pred.shape[1]].to(pred)
    return reduce_errors(pred.float() - target_for(scheduler, x0, noise, t).float(), loss)


def reduce_errors(error: torch.Tensor, loss: str) -> torch.Tensor:
    """One loss value from the (batch, ...) prediction errors, as LOSSES describes."""
    if loss == "mse":
        return error.square().mean()
    if loss == "log-mse":
        return torch.log(error.square().flatten(1).mean(1) + LOG_MSE_FLOOR).mean()
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
