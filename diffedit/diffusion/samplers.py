"""Built-in samplers: names the UI shows, mapped to a diffusers scheduler class and its options.

`BUILTIN_SAMPLERS` is plain data so the plugin registry can list samplers without importing torch or
diffusers; `make_scheduler` imports diffusers only when a run actually needs a scheduler. The facts
behind the choices here are in /work/shared/design/DIFFUSERS_NOTES.md (statefulness, clipping,
generator, evaluation counts, Karras sigmas).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from diffedit.tasks.registry import SamplerInfo

_KARRAS = {"use_karras_sigmas": True}

BUILTIN_SAMPLERS: list[SamplerInfo] = [
    SamplerInfo("ddpm", "DDPM", "The original ancestral sampler: robust but needs many steps (50 or more).",
                "DDPMScheduler", stochastic=True),
    SamplerInfo("ddim", "DDIM", "Deterministic first-order sampler; the same seed always gives the same image.",
                "DDIMScheduler", step_kwargs={"eta": 0.0}),
    SamplerInfo("ddim-eta1", "DDIM (eta 1)", "DDIM with full fresh noise each step, behaving like DDPM.",
                "DDIMScheduler", step_kwargs={"eta": 1.0}, stochastic=True),
    SamplerInfo("pndm", "PNDM / PLMS", "Pseudo linear multistep: good at 20-50 steps, one extra evaluation.",
                "PNDMScheduler", config={"skip_prk_steps": True}),
    SamplerInfo("dpmpp-2m", "DPM++ 2M", "Second-order multistep solver on the model's own timestep spacing.",
                "DPMSolverMultistepScheduler", config={"algorithm_type": "dpmsolver++", "solver_order": 2}),
    SamplerInfo("dpmpp-2m-karras", "DPM++ 2M Karras",
                "Second-order multistep solver with Karras sigmas: a sharp default for 10-25 steps.",
                "DPMSolverMultistepScheduler",
                config={"algorithm_type": "dpmsolver++", "solver_order": 2, **_KARRAS}),
    SamplerInfo("dpmpp-3m-karras", "DPM++ 3M Karras",
                "Third-order multistep solver with Karras sigmas, for unconditional models at few steps.",
                "DPMSolverMultistepScheduler",
                config={"algorithm_type": "dpmsolver++", "solver_order": 3, **_KARRAS}),
    # DPMSolverSDEScheduler ("DPM++ SDE") needs torchsde, which is not a dependency: the multistep
    # SDE variant gives the same kind of stochastic, high-quality sampling without it.
    SamplerInfo("dpmpp-2m-sde-karras", "DPM++ 2M SDE Karras",
                "Stochastic second-order solver with Karras sigmas: varied detail, converges well.",
                "DPMSolverMultistepScheduler",
                config={"algorithm_type": "sde-dpmsolver++", "solver_order": 2, **_KARRAS}, stochastic=True),
    SamplerInfo("euler", "Euler", "Simple deterministic first-order sampler in sigma space.",
                "EulerDiscreteScheduler"),
    SamplerInfo("euler-a", "Euler Ancestral", "Euler with fresh noise each step: creative, never fully converges.",
                "EulerAncestralDiscreteScheduler", stochastic=True),
    SamplerInfo("heun", "Heun", "Second-order Euler with a correction: accurate, two evaluations per step.",
                "HeunDiscreteScheduler", evaluations_per_step=2),
    SamplerInfo("lms", "LMS", "Linear multistep in sigma space: cheap, can be unstable at very few steps.",
                "LMSDiscreteScheduler"),
    SamplerInfo("unipc", "UniPC", "Predictor-corrector multistep solver on the model's own timestep spacing.",
                "UniPCMultistepScheduler"),
    SamplerInfo("unipc-karras", "UniPC Karras",
                "Predictor-corrector solver with Karras sigmas: among the best at 5-10 steps.",
                "UniPCMultistepScheduler", config=dict(_KARRAS)),
    SamplerInfo("deis", "DEIS", "Exponential-integrator multistep solver: accurate at 10-20 steps.",
                "DEISMultistepScheduler"),
]

_OFF = {"clip_sample": False, "thresholding": False}  # both assume pixel data in [-1, 1]


def sampler_names() -> list[str]:
    """Names of the built-in samplers, in the order the UI lists them."""
    return [info.name for info in BUILTIN_SAMPLERS]


def get_sampler(name: str) -> SamplerInfo:
    """The built-in sampler called `name` (KeyError names the choices)."""
    for info in BUILTIN_SAMPLERS:
        if info.name == name:
            return info
    raise KeyError(f"unknown sampler '{name}'; choose one of {', '.join(sampler_names())}")


def make_scheduler(info: SamplerInfo, base_config: Mapping[str, Any]) -> Any:
    """A FRESH scheduler for one run: schedulers are stateful and must never be shared.

    `base_config` is the model's scheduler config (betas, prediction_type, timestep spacing...);
    clipping and thresholding are turned off because latents are not in [-1, 1], then the sampler's
    own options win.
    """
    import diffusers

    cls = getattr(diffusers, info.scheduler, None)
    if cls is None:
        raise ValueError(f"sampler '{info.name}': diffusers has no scheduler class '{info.scheduler}'")
    accepted = inspect.signature(cls.__init__).parameters
    config = dict(base_config)
    config.update({key: value for key, value in _OFF.items() if key in accepted or key in config})
    config.update(info.config)
    return cls.from_config(config)


def step_accepts_generator(scheduler: Any) -> bool:
    """Whether `scheduler.step` takes `generator=` (PNDM, Heun, LMS, UniPC, DEIS raise TypeError)."""
    return "generator" in inspect.signature(scheduler.step).parameters


def steps_run(steps: int, strength: float = 1.0) -> int:
    """How many of `steps` an img2img run at `strength` actually takes (diffusers' convention)."""
    return steps if strength >= 1.0 else int(steps * strength)


def expected_evaluations(info: SamplerInfo, steps: int, strength: float = 1.0) -> int:
    """Model evaluations a run makes, for honest progress bars (evaluations are not steps).

    Second-order samplers with k evaluations per step skip the correction on the last step (to
    sigma 0): k*n - (k-1). PLMS without Runge-Kutta warm-up pays one extra evaluation (none for a
    single step); with the warm-up, 9.
    """
    n = steps_run(steps, strength)
    if n <= 0:
        return 0
    if info.scheduler == "PNDMScheduler":
        if not info.config.get("skip_prk_steps", False):
            return n + 9
        return n + 1 if n > 1 else 1
    k = info.evaluations_per_step
    return k * n - (k - 1)
