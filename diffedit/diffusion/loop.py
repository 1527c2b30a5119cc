"""The one denoise loop every task uses, around any diffusers scheduler.

We own the loop (not a diffusers pipeline) so tasks can start part-way from an image (img2img), put the
known region back after each step (inpainting), stop on cancel and show x0 previews. The scheduler
pitfalls it handles are listed in /work/shared/design/DIFFUSERS_NOTES.md; the numbers (n) below refer
to that file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from diffedit.diffusion.samplers import step_accepts_generator, steps_run
from diffedit.tasks.cancel import CancelToken
from diffedit.tasks.registry import SamplerInfo

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""`model_fn(x_in, t)`: the model output (epsilon, v or sample, as the scheduler's prediction_type says)."""
CondModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""`f(x_in, t, cond)`: like ModelFn; `cond` is a bool tensor (B,), True for rows to condition."""
BlendFn = Callable[[torch.Tensor, int, Any], torch.Tensor]
"""`blend(x, i, scheduler) -> x` after the step at `scheduler.timesteps[i]`."""


@dataclass(frozen=True)
class LoopStep:
    """Progress after one sampler step (a Heun step is two model evaluations, the last one is one)."""

    step: int  # 1-based, counted within this run (an img2img run takes fewer steps)
    total: int
    evaluations: int  # model calls so far: what the time was really spent on
    timestep: float  # where the step started
    x0: torch.Tensor | None  # the predicted clean sample; only on preview steps and the last step


def denoise(
    model_fn: ModelFn,
    scheduler: Any,
    sampler: SamplerInfo,
    *,
    shape: tuple[int, ...],
    steps: int,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    init: torch.Tensor | None = None,
    strength: float = 1.0,
    noise: torch.Tensor | None = None,
    blend: BlendFn | None = None,
    cancel: CancelToken | None = None,
    callback: Callable[[LoopStep], None] | None = None,
    preview_every: int = 1,
    resample: int = 1,
) -> torch.Tensor:
    """Sample `shape` from pure noise, or from `init` noised part-way when `strength` < 1.

    `scheduler` must be fresh (see `make_scheduler`): schedulers keep state across steps (1).
    `noise` (default: drawn from `generator`) is the start noise; inpainting passes the same tensor
    to `known_region_blend`. Raises `Cancelled` before a model evaluation once `cancel` is set, so a
    cancelled run never returns a half result. The same generator seed gives a bit-identical result.
    `resample` > 1 is RePaint's resampling: each step is redone that many times, going back one step
    with fresh noise in between, so the generated region harmonises with the blended-in known one.
    It needs a sampler whose step has no memory (DDPM or DDIM).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    partial = strength < 1.0
    if partial and init is None:
        raise ValueError("strength < 1 needs an init sample to start from")
    if resample > 1 and type(scheduler).__name__ not in RESAMPLING_SCHEDULERS:
        raise ValueError(f"resampling needs a sampler without step memory (ddpm or ddim), not '{sampler.name}'")
    if getattr(scheduler, "_diffedit_used", False):
        raise RuntimeError("a scheduler serves one run only: build a fresh one with make_scheduler()")
    scheduler._diffedit_used = True

    total = steps_run(steps, strength)
    if total == 0:  # nothing left to denoise at this strength
        return init.to(device=device, dtype=dtype).clone()  # type: ignore[union-attr]
    if noise is None:
        noise = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    noise = noise.to(device=device, dtype=dtype)
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {tuple(shape)}")

    scheduler.set_timesteps(steps, device=device)
    begin = _start_index(scheduler, steps, total)
    timesteps = scheduler.timesteps
    if partial:  # SDEdit (7): the image noised to the first timestep of the shortened schedule
        start = timesteps[begin : begin + 1].repeat(shape[0])
        x = scheduler.add_noise(init.to(device=device, dtype=dtype), noise, start)  # type: ignore[union-attr]
    else:  # (2): sigma-space schedulers start at sigma_max, not 1
        x = noise * scheduler.init_noise_sigma

    step_kwargs = dict(sampler.step_kwargs)
    if step_accepts_generator(scheduler):  # (3): the others raise TypeError
        step_kwargs["generator"] = generator
    per_step = max(1, sampler.evaluations_per_step)
    iterations = len(timesteps) - begin
    done, step_t, evaluations = 0, None, 0
    for j in range(iterations):
        i = begin + j
        t = timesteps[i]
        for r in range(resample if i + 1 < len(timesteps) else 1):
            if r:  # RePaint: back from timesteps[i+1] to t with fresh noise, then the step again
                x = _renoise_one_step(scheduler, x, t, timesteps[i + 1], generator)
            if cancel is not None:
                cancel.raise_if_cancelled()
            x_in = scheduler.scale_model_input(x, t)
            model_out = model_fn(x_in, t)
            evaluations += 1
            out = scheduler.step(model_out, t, x, **step_kwargs)
            x = out.prev_sample
            if blend is not None:
                x = blend(x, i, scheduler)
        if callback is None:
            continue
        step_t = t if step_t is None else step_t
        # Counted from the end: warm-up evaluations (PLMS) come first, the last step to sigma 0 takes
        # one evaluation, every other step takes per_step.
        left = iterations - 1 - j
        completed = total - (left + 2 * per_step - 2) // per_step if left else total
        if completed <= done:
            continue
        done = completed
        preview = done == total or (preview_every > 0 and done % preview_every == 0)
        x0 = _predicted_x0(scheduler, out, x_in, model_out, t).to(x.dtype) if preview else None
        callback(LoopStep(done, total, evaluations, float(step_t), x0))
        step_t = None
    return x.to(dtype)


RESAMPLING_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler")


def _renoise_one_step(scheduler: Any, x: torch.Tensor, t: Any, t_next: Any, generator: torch.Generator) -> torch.Tensor:
    """Sample x_t given x_{t_next} (t_next < t): the forward process over the gap between them."""
    alphas = scheduler.alphas_cumprod
    ratio = float(alphas[int(t)] / alphas[int(t_next)])
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    return ratio**0.5 * x + (1 - ratio) ** 0.5 * noise


def _start_index(scheduler: Any, steps: int, total: int) -> int:
    """Index of the first timestep this run takes, after `set_timesteps(steps)`; sets the begin index.

    PLMS does not follow the `timesteps[k * order:]` rule: its schedule repeats the second timestep
    (the second evaluation redoes the first step), and a slice drops that repeat, so the sample then
    skips one noise level. A shortened PLMS run gets the schedule a full run has, `steps - total`
    levels later.
    """
    skipped = steps - total
    if type(scheduler).__name__ == "PNDMScheduler":
        if skipped and not scheduler.config.skip_prk_steps:
            raise ValueError("PNDM with Runge-Kutta warm-up cannot start part-way: use skip_prk_steps=True")
        if skipped:
            levels = torch.unique_consecutive(scheduler.timesteps)[skipped:]
            scheduler.timesteps = torch.cat([levels[:2], levels[1:]]) if len(levels) > 1 else levels
        return 0
    begin = skipped * scheduler.order
    if hasattr(scheduler, "set_begin_index"):  # then add_noise uses the step index, not a lookup
        scheduler.set_begin_index(begin)
    return begin


def _predicted_x0(scheduler: Any, out: Any, x_in: torch.Tensor, model_out: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
    """The clean sample the model predicts now: the scheduler's own when it returns one, else from
    the model output and alpha_bar(t) (the model input is a VP sample at `t` for every scheduler)."""
    x0 = getattr(out, "pred_original_sample", None)
    if x0 is not None:
        return x0
    kind = scheduler.config.prediction_type
    if kind == "sample":
        return model_out
    alphas = scheduler.alphas_cumprod
    alpha = float(alphas[min(max(round(float(t)), 0), len(alphas) - 1)])
    a, s = alpha**0.5, (1.0 - alpha) ** 0.5
    if kind == "v_prediction":
        return a * x_in - s * model_out
    return (x_in - s * model_out) / a


def known_region_blend(x0_known: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor) -> BlendFn:
    """A `blend` hook for inpainting: keep the known pixels, noised to where the sampler is now.

    `mask` is 1 where the model generates and 0 where `x0_known` stays (soft values blend). After
    step i the known region is re-noised to `timesteps[i+1]` (6); after the last step it is
    `x0_known` exactly. Mid-step states of two-evaluation schedulers are left alone: their midpoint
    timesteps do not match the sample's noise level.
    """

    def blend(x: torch.Tensor, i: int, scheduler: Any) -> torch.Tensor:
        timesteps = scheduler.timesteps
        if i + 1 >= len(timesteps):
            return torch.lerp(x0_known.to(x), x, mask.to(x))
        if not getattr(scheduler, "state_in_first_order", True):
            return x
        known = scheduler.add_noise(x0_known.to(x), noise.to(x), timesteps[i + 1 : i + 2])
        return torch.lerp(known.to(x), x, mask.to(x))

    return blend


def clamped_model(model_fn: ModelFn, scheduler: Any) -> ModelFn:
    """The model with its predicted clean image clamped to [-1, 1]: for pixel models.

    At the noisiest steps an epsilon model's error is multiplied by 1/sqrt(alpha_bar) (157 for linear
    betas) in the clean image it implies; an imperfect model (any model trained for an hour on a CPU)
    then diverges to saturated noise. DDIM's `clip_sample` fixes that for DDIM alone; doing it here
    (clamp x0, then re-express it as the model's prediction type, as DDIM does) fixes every sampler.
    The model input is the VP sample at `t` for every scheduler (scale_model_input), see _predicted_x0.
    """
    alphas = scheduler.alphas_cumprod
    kind = scheduler.config.prediction_type

    def clamped(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model_fn(x_in, t)
        if kind == "sample":
            return out.clamp(-1.0, 1.0)
        alpha = float(alphas[min(max(round(float(t)), 0), len(alphas) - 1)])
        a, s = alpha**0.5, (1.0 - alpha) ** 0.5
        x0 = (a * x_in - s * out) if kind == "v_prediction" else (x_in - s * out) / a
        x0c = x0.clamp(-1.0, 1.0)
        eps = (x_in - a * x0c) / s
        return a * eps - s * x0c if kind == "v_prediction" else eps

    return clamped


def guided_model(model_fn: CondModelFn, guidance_scale: float) -> ModelFn:
    """Classifier-free guidance as a ModelFn: uncond + scale * (cond - uncond).

    Both halves go through `model_fn` as ONE batch (rows [uncond..., cond...], told apart by the
    `cond` flags, so the model maps them to its embeddings); scale 1 (or 0) needs only one half, so
    it makes one unbatched call.
    """
    if guidance_scale in (0.0, 1.0):
        flag = guidance_scale == 1.0

        def single(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model_fn(x_in, t, torch.full((x_in.shape[0],), flag, dtype=torch.bool, device=x_in.device))

        return single

    def guided(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        batch = x_in.shape[0]
        cond = torch.arange(2 * batch, device=x_in.device) >= batch
        uncond_out, cond_out = model_fn(torch.cat([x_in, x_in]), t, cond).chunk(2)
        return uncond_out + guidance_scale * (cond_out - uncond_out)

    return guided
