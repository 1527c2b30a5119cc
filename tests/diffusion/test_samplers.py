"""The sampler table: plain data, and fresh, correctly configured schedulers from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gmm import PIXEL_CONFIG

from diffedit.diffusion.samplers import (
    BUILTIN_SAMPLERS,
    expected_evaluations,
    get_sampler,
    make_scheduler,
    sampler_names,
    step_accepts_generator,
)
from diffedit.tasks.registry import Registry

# diffusers 0.42 schedulers trip numpy 2 deprecations on every step: not ours to fix, just noise
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers")
ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["ddpm", "ddim", "ddim-eta1", "pndm", "dpmpp-2m", "dpmpp-2m-karras", "dpmpp-2m-sde-karras",
            "dpmpp-3m-karras", "euler", "euler-a", "heun", "lms", "unipc", "unipc-karras", "deis"]


def test_importing_the_table_loads_neither_torch_nor_diffusers() -> None:
    code = ("import sys\nfrom diffedit.diffusion.samplers import BUILTIN_SAMPLERS, sampler_names\n"
            "sampler_names()\nprint(sorted({'torch', 'diffusers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_names_labels_and_descriptions() -> None:
    names = sampler_names()
    assert set(REQUIRED) <= set(names) and len(names) == len(set(names))
    for info in BUILTIN_SAMPLERS:
        assert info.label and info.description.endswith(".") and info.description.count(". ") == 0, info.name
        assert get_sampler(info.name) is info
    with pytest.raises(KeyError, match="choose one of"):
        get_sampler("nope")
    registry = Registry()
    for info in BUILTIN_SAMPLERS:  # the registry refuses duplicates: the table must register cleanly
        registry.add_sampler(info)


@pytest.mark.parametrize("info", BUILTIN_SAMPLERS, ids=lambda i: i.name)
def test_make_scheduler_is_fresh_configured_and_unclipped(info) -> None:
    base = {**PIXEL_CONFIG, "clip_sample": True, "thresholding": True, "prediction_type": "v_prediction"}
    first, second = make_scheduler(info, base), make_scheduler(info, base)
    assert first is not second and type(first).__name__ == info.scheduler
    assert first.config.prediction_type == "v_prediction" and first.config.beta_schedule == "linear"
    assert not first.config.get("clip_sample", False) and not first.config.get("thresholding", False)
    for key, value in info.config.items():
        assert first.config[key] == value, key
    assert base["clip_sample"] is True  # the caller's dict is left alone


def test_sampler_options_reach_the_scheduler() -> None:
    assert make_scheduler(get_sampler("pndm"), PIXEL_CONFIG).config.skip_prk_steps
    sde = make_scheduler(get_sampler("dpmpp-2m-sde-karras"), PIXEL_CONFIG)  # no torchsde needed
    assert sde.config.algorithm_type == "sde-dpmsolver++" and sde.config.use_karras_sigmas
    assert make_scheduler(get_sampler("dpmpp-3m-karras"), PIXEL_CONFIG).config.solver_order == 3
    assert get_sampler("ddim").step_kwargs == {"eta": 0.0} and get_sampler("ddim-eta1").step_kwargs == {"eta": 1.0}
    assert {i.name for i in BUILTIN_SAMPLERS if i.stochastic} == {"ddpm", "ddim-eta1", "euler-a",
                                                                  "dpmpp-2m-sde-karras"}


def test_step_accepts_generator_follows_the_signature() -> None:
    takes = {i.name for i in BUILTIN_SAMPLERS if step_accepts_generator(make_scheduler(i, PIXEL_CONFIG))}
    assert {"pndm", "heun", "lms", "unipc", "unipc-karras", "deis"}.isdisjoint(takes)
    assert {i.name for i in BUILTIN_SAMPLERS if i.stochastic} <= takes


def test_expected_evaluations_formulas() -> None:
    heun, pndm, ddim = get_sampler("heun"), get_sampler("pndm"), get_sampler("ddim")
    assert [expected_evaluations(heun, n) for n in (1, 2, 10)] == [1, 3, 19]
    assert [expected_evaluations(pndm, n) for n in (1, 2, 10)] == [1, 3, 11]
    assert expected_evaluations(ddim, 10) == 10 and expected_evaluations(ddim, 10, strength=0.55) == 5
    assert expected_evaluations(heun, 10, strength=0.5) == 9 and expected_evaluations(ddim, 10, strength=0.05) == 0


@pytest.mark.parametrize("name", ["heun", "pndm", "dpmpp-2m"])
def test_expected_evaluations_match_the_schedule_length(name: str) -> None:
    info = get_sampler(name)
    for steps in (2, 5, 13):
        scheduler = make_scheduler(info, PIXEL_CONFIG)
        scheduler.set_timesteps(steps)
        assert len(scheduler.timesteps) == expected_evaluations(info, steps)
    assert torch.is_tensor(scheduler.timesteps)
