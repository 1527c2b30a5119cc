"""The denoise loop: one contract every built-in sampler passes, and accuracy on an exact model.

Models here are analytic (gmm.py): exact denoisers of a Gaussian and of a Gaussian mixture, so a
failure is the loop's or the scheduler's, never a network's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gmm import PIXEL_CONFIG, Distances, ExactDenoiser, GaussianDenoiser, default_gmm

from diffedit.diffusion.loop import LoopStep, denoise, guided_model, known_region_blend
from diffedit.diffusion.samplers import BUILTIN_SAMPLERS, expected_evaluations, get_sampler, make_scheduler
from diffedit.tasks.cancel import Cancelled, CancelToken
from diffedit.tasks.registry import SamplerInfo

# diffusers 0.42 schedulers trip numpy 2 deprecations on every step: not ours to fix, just noise
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers")
SHAPE = (2, 3, 8, 8)
STEPS = 7
SAMPLERS = pytest.mark.parametrize("info", BUILTIN_SAMPLERS, ids=lambda i: i.name)


def run(info: SamplerInfo, seed: int = 0, config: dict | None = None, **kwargs) -> tuple[torch.Tensor, GaussianDenoiser,
                                                                                         list[LoopStep]]:
    """One run on the tiny Gaussian model; returns the output, the model (it counts calls) and the log."""
    scheduler = make_scheduler(info, config or PIXEL_CONFIG)
    model = GaussianDenoiser(scheduler.alphas_cumprod, prediction_type=scheduler.config.prediction_type)
    log: list[LoopStep] = []
    kwargs.setdefault("steps", STEPS)
    out = denoise(model, scheduler, info, shape=SHAPE, generator=torch.Generator().manual_seed(seed),
                  callback=log.append, **kwargs)
    return out, model, log


# ----------------------------------------------------------------------------------- the contract
@SAMPLERS
def test_shape_dtype_and_seeds(info: SamplerInfo) -> None:
    out, _, _ = run(info)
    assert out.shape == SHAPE and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out, run(info)[0]), "the same seed must give the same output, bit for bit"
    assert not torch.allclose(out, run(info, seed=1)[0])
    assert run(info, dtype=torch.float64, steps=3)[0].dtype == torch.float64


@SAMPLERS
@pytest.mark.parametrize("steps", [1, STEPS])
def test_evaluations_and_progress(info: SamplerInfo, steps: int) -> None:
    out, model, log = run(info, steps=steps, preview_every=2)
    assert model.calls == expected_evaluations(info, steps) == log[-1].evaluations
    assert [s.step for s in log] == list(range(1, steps + 1)) and {s.total for s in log} == {steps}
    evaluations = [s.evaluations for s in log]
    assert evaluations == sorted(set(evaluations))
    timesteps = [s.timestep for s in log]
    assert timesteps == sorted(timesteps, reverse=True) and len(set(timesteps)) == steps
    previews = [s.step for s in log if s.x0 is not None]
    assert previews == sorted({*range(2, steps + 1, 2), steps})
    assert all(s.x0.shape == SHAPE and s.x0.dtype == torch.float32 for s in log if s.x0 is not None)
    if not info.stochastic:  # the last step lands on (almost) its own x0 prediction
        torch.testing.assert_close(log[-1].x0, out, atol=0.05, rtol=0)


@SAMPLERS
def test_cancel_stops_before_the_next_evaluation(info: SamplerInfo) -> None:
    token = CancelToken()
    seen: list[LoopStep] = []

    def cancel_at_two(step: LoopStep) -> None:
        seen.append(step)
        if step.step == 2:
            token.cancel()

    scheduler = make_scheduler(info, PIXEL_CONFIG)
    model = GaussianDenoiser(scheduler.alphas_cumprod)
    with pytest.raises(Cancelled):
        denoise(model, scheduler, info, shape=SHAPE, steps=STEPS, generator=torch.Generator().manual_seed(0),
                cancel=token, callback=cancel_at_two)
    assert seen[-1].step == 2 and model.calls == seen[-1].evaluations
    with pytest.raises(Cancelled):
        run(info, cancel=token)
    assert token.cancelled


@SAMPLERS
def test_img2img_starts_part_way(info: SamplerInfo) -> None:
    init = 0.3 + 0.5 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(7))
    full, _, _ = run(info, steps=8)
    out, model, log = run(info, steps=8, init=init, strength=0.5)
    assert model.calls == expected_evaluations(info, 8, strength=0.5) < expected_evaluations(info, 8)
    assert [s.step for s in log] == [1, 2, 3, 4] and out.shape == SHAPE
    light, _, _ = run(info, steps=10, init=init, strength=0.2)  # the last 2 of 10 steps: mostly init
    assert _corr(light, init) > 0.5 and abs(_corr(full, init)) < 0.3
    same, model, _ = run(info, steps=8, init=init, strength=0.1)  # int(0.8) == 0 steps left
    assert torch.equal(same, init) and model.calls == 0


@SAMPLERS
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_inpainting_keeps_the_known_region(info: SamplerInfo, strength: float) -> None:
    known = 0.3 + 0.5 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1.0  # generate the right half
    blend = known_region_blend(known, mask, noise)
    out, model, _ = run(info, steps=6, init=known, strength=strength, noise=noise, blend=blend)
    assert torch.equal(out[..., :4], known[..., :4])
    assert not torch.allclose(out[..., 4:], known[..., 4:], atol=1e-3)
    assert model.calls == expected_evaluations(info, 6, strength)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


# ------------------------------------------------------------------------------- loop behaviour
def test_blend_gets_absolute_timestep_indices_and_heun_midpoints_are_left_alone() -> None:
    calls: list[tuple[int, bool]] = []

    def spy(x: torch.Tensor, i: int, scheduler) -> torch.Tensor:
        calls.append((i, scheduler.state_in_first_order))
        return x

    run(get_sampler("heun"), steps=4, init=torch.zeros(SHAPE), strength=0.5, blend=spy)
    assert [i for i, _ in calls] == [4, 5, 6]  # steps 3 and 4 of 4: timesteps[2 * 2:]
    assert [first for _, first in calls] == [False, True, False]
    scheduler = make_scheduler(get_sampler("heun"), PIXEL_CONFIG)
    scheduler.set_timesteps(4)
    scheduler.dt = 1.0  # mid-step: no re-noising
    x = torch.ones(SHAPE)
    assert known_region_blend(torch.zeros(SHAPE), torch.zeros(SHAPE), torch.ones(SHAPE))(x, 1, scheduler) is x


def test_guided_model_batches_both_halves_and_scale_one_is_one_plain_call() -> None:
    calls: list[tuple[int, list[bool]]] = []

    def model(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        calls.append((x.shape[0], cond.tolist()))
        return x + cond.to(x.dtype).view(-1, 1, 1, 1) * 2.0  # cond rows add 2, uncond rows add 0

    x = torch.randn(SHAPE)
    torch.testing.assert_close(guided_model(model, 7.5)(x, torch.tensor(10)), x + 15.0)
    assert calls == [(4, [False, False, True, True])]
    calls.clear()
    torch.testing.assert_close(guided_model(model, 1.0)(x, torch.tensor(10)), x + 2.0)
    torch.testing.assert_close(guided_model(model, 0.0)(x, torch.tensor(10)), x)
    assert calls == [(2, [True, True]), (2, [False, False])]
    calls.clear()
    info = get_sampler("dpmpp-2m-karras")
    denoise(guided_model(lambda x, t, c: 0.1 * x, 5.0), make_scheduler(info, PIXEL_CONFIG), info, shape=SHAPE,
            steps=4, generator=torch.Generator().manual_seed(0))


def test_a_scheduler_serves_one_run_and_arguments_are_checked() -> None:
    info = get_sampler("euler")
    scheduler = make_scheduler(info, PIXEL_CONFIG)
    model = GaussianDenoiser(scheduler.alphas_cumprod)
    gen = torch.Generator().manual_seed(0)
    denoise(model, scheduler, info, shape=SHAPE, steps=2, generator=gen)
    with pytest.raises(RuntimeError, match="fresh"):
        denoise(model, scheduler, info, shape=SHAPE, steps=2, generator=gen)
    for bad in ({"steps": 0}, {"strength": 1.5}, {"strength": 0.5}, {"noise": torch.zeros(1, 3, 8, 8)}):
        with pytest.raises(ValueError):
            denoise(model, make_scheduler(info, PIXEL_CONFIG), info, shape=SHAPE, generator=gen,
                    **{"steps": 2, **bad})
    _, _, log = run(info, preview_every=0)
    assert [s.step for s in log if s.x0 is not None] == [STEPS]
    eta = dataclasses.replace(get_sampler("ddim"), step_kwargs={"eta": 0.5})  # options are overridable
    assert not torch.equal(run(eta)[0], run(get_sampler("ddim"))[0])


@pytest.mark.parametrize("name", ["ddim", "dpmpp-2m", "unipc", "euler", "heun", "lms"])
@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_other_prediction_types_give_the_same_samples(name: str, prediction_type: str) -> None:
    info = get_sampler(name)
    eps, _, eps_log = run(info, steps=10)
    other, _, log = run(info, steps=10, config={**PIXEL_CONFIG, "prediction_type": prediction_type})
    torch.testing.assert_close(other, eps, atol=2e-3, rtol=0)
    torch.testing.assert_close(log[3].x0, eps_log[3].x0, atol=2e-3, rtol=0)


# ------------------------------------------------------------------------------------- accuracy
GMM_SAMPLES = 4000


@pytest.fixture(scope="module")
def distances() -> Distances:
    return Distances(default_gmm())


def gmm_run(info: SamplerInfo, steps: int, **kwargs) -> np.ndarray:
    scheduler = make_scheduler(info, PIXEL_CONFIG)
    model = ExactDenoiser(default_gmm(), scheduler.alphas_cumprod)
    out = denoise(model, scheduler, info, shape=(GMM_SAMPLES, 2), steps=steps,
                  generator=torch.Generator().manual_seed(0), **kwargs)
    assert model.calls == expected_evaluations(info, steps, kwargs.get("strength", 1.0))
    return out.double().numpy()


@SAMPLERS
def test_every_sampler_converges_on_an_exact_mixture_model(info: SamplerInfo, distances: Distances) -> None:
    """4000 samples: exact ones are 0.02-0.04 (sliced W2) from the mixture, 5-step runs 0.13-0.41."""
    coarse, fine = gmm_run(info, 5), gmm_run(info, 50)
    assert distances.sliced_w2(fine) < 0.6 * distances.sliced_w2(coarse)
    assert distances.sliced_w2(fine) < 0.08
    assert distances.cov_error(fine) < 0.08 and distances.mean_error(fine) < 0.08


@SAMPLERS
def test_img2img_from_exact_samples_stays_on_the_distribution(info: SamplerInfo, distances: Distances) -> None:
    """Noising true samples part-way and denoising must give true samples again (SDEdit start)."""
    init = torch.from_numpy(default_gmm().sample(GMM_SAMPLES, seed=5)).float()
    assert distances.sliced_w2(gmm_run(info, 50, init=init, strength=0.5)) < 0.1


# ---------------------------------------------------------------------- clamping pixel models' x0
@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_clamped_model_keeps_the_implied_clean_image_in_range(kind: str) -> None:
    from diffedit.diffusion.loop import clamped_model

    scheduler = make_scheduler(get_sampler("ddim"), {**PIXEL_CONFIG, "prediction_type": kind})
    alphas = scheduler.alphas_cumprod
    x_in = torch.randn(SHAPE)
    for t in (999, 500, 20):
        wild = torch.randn(SHAPE) * 5  # a badly wrong model
        out = clamped_model(lambda x, tt, w=wild: w, scheduler)(x_in, torch.tensor(t))
        a, s = float(alphas[t]) ** 0.5, (1 - float(alphas[t])) ** 0.5
        x0 = {"epsilon": (x_in - s * out) / a, "v_prediction": a * x_in - s * out, "sample": out}[kind]
        assert x0.abs().max() <= 1.0 + 1e-4
        good = x0.clamp(-1, 1)  # a prediction already in range passes through unchanged
        exact = {"epsilon": (x_in - a * good) / s, "v_prediction": a * (x_in - a * good) / s - s * good,
                 "sample": good}[kind]
        again = clamped_model(lambda x, tt, e=exact: e, scheduler)(x_in, torch.tensor(t))
        assert torch.allclose(again, exact, atol=1e-4)


@SAMPLERS
def test_an_imperfect_pixel_model_stays_in_range_with_every_sampler(info: SamplerInfo) -> None:
    """Without the clamp, Euler, LMS and PNDM drove an under-trained digit model to values of +-7."""
    from diffedit.diffusion.loop import clamped_model

    scheduler = make_scheduler(info, PIXEL_CONFIG)
    exact = GaussianDenoiser(scheduler.alphas_cumprod, prediction_type=scheduler.config.prediction_type)

    def biased(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return exact(x, t) * 1.1 + 0.05  # a model with a systematic error

    out = denoise(clamped_model(biased, scheduler), scheduler, info, shape=SHAPE, steps=10,
                  generator=torch.Generator().manual_seed(0))
    assert out.abs().max() <= 1.5  # multistep PNDM extrapolates a little past its clamped estimates
