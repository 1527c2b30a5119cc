"""What every diffusion task shares: load a model, pick a sampler, build the conditioned model
function, run the loop with progress and previews, convert images, and write the record.

Task plugins call these; third-party plugins may too.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffedit import __version__
from diffedit.diffusion.checkpoints import LoadedModel, load_checkpoint
from diffedit.diffusion.devices import NonFiniteResult, nan_guard, pick_device, pick_dtype, translate_out_of_memory
from diffedit.diffusion.loop import BlendFn, LoopStep, ModelFn, clamped_model, denoise, guided_model
from diffedit.diffusion.samplers import get_sampler, make_scheduler
from diffedit.document.records import GenerationRecord
from diffedit.tasks.base import RunContext, StepProgress, TaskRequest, TaskResult
from diffedit.tasks.params import params_to_record
from diffedit.tasks.registry import ModelLoaderInfo, SamplerInfo

_CACHE: OrderedDict[tuple[str, str, str], LoadedModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 2


class TaskError(ValueError):
    """A task cannot run with this model or input; the message says what to change."""


def load_model(path: str, device: torch.device, dtype: torch.dtype,
               loaders: Iterable[ModelLoaderInfo] = ()) -> LoadedModel:
    """Load (or reuse) a checkpoint; the last few stay in memory so repeated runs start at once.

    A folder that one of `loaders` (the registry's model loaders) detects loads through it, e.g. a
    Stable Diffusion pipeline folder; anything else through load_checkpoint, whose errors say what is
    wrong with the folder.
    """
    key = (str(path), str(device), str(dtype))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    model = _load_uncached(path, device, dtype, loaders)
    with _CACHE_LOCK:
        _CACHE[key] = model
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


def _load_uncached(path: str, device: torch.device, dtype: torch.dtype,
                   loaders: Iterable[ModelLoaderInfo]) -> LoadedModel:
    for info in loaders:
        if _function(info.detect)(path):
            return _function(info.load)(path, device, dtype)  # type: ignore[no-any-return]
    return load_checkpoint(path, device=device, dtype=dtype)


def _function(ref: str) -> Callable[..., Any]:
    """A plugin's "module:function", imported now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@dataclass
class Run:
    """One run's resources: the model on its device, the sampler, the seeded generator."""

    request: TaskRequest
    context: RunContext
    model: LoadedModel
    device: torch.device
    dtype: torch.dtype
    sampler: SamplerInfo
    steps: int
    seed: int
    generator: torch.Generator

    @property
    def manifest(self) -> Any:
        return self.model.manifest

    def fresh_generator(self) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(self.seed)


def start_run(request: TaskRequest, context: RunContext, accepted_tasks: tuple[str, ...]) -> Run:
    """Load the model and check it suits the task; choose device, precision and sampler."""
    device = pick_device(request.device)
    dtype = pick_dtype(device, request.precision)
    assert request.model is not None
    model = load_model(request.model, device, dtype, context.model_loaders.values())
    if not set(model.manifest.served_tasks) & set(accepted_tasks):
        raise TaskError(f"the model in {request.model} is a '{model.manifest.task}' model; task '{request.task}' "
                        f"needs one of: {', '.join(accepted_tasks)}")
    params = request.params
    name = getattr(params, "sampler", "") or model.manifest.default_sampler
    sampler = context.samplers.get(name)
    if sampler is None:
        try:
            sampler = get_sampler(name)
        except KeyError:
            known = ", ".join(sorted(context.samplers)) or "see 'diffedit samplers'"
            raise TaskError(f"unknown sampler '{name}'; choose one of {known}") from None
    seed = int(getattr(params, "seed", 0) or 0)
    steps = int(getattr(params, "steps", 0) or model.manifest.default_steps)
    return Run(request, context, model, device, dtype, sampler, steps, seed,
               torch.Generator(device="cpu").manual_seed(seed))


# -- images <-> tensors ------------------------------------------------------------------------------
def image_to_tensor(rgba: np.ndarray, channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(h, w, 4) uint8 -> (1, channels, h, w) in [-1, 1]; one channel means luminance."""
    rgb = rgba[..., :3].astype(np.float32) / 127.5 - 1.0
    if channels == 1:
        rgb = (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device=device, dtype=dtype)


def tensor_to_rgb(x: torch.Tensor) -> np.ndarray:
    """(1, C, h, w) in [-1, 1] -> (h, w, 3) uint8 (one channel becomes grey)."""
    arr = x[0].detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).cpu().numpy()
    arr = arr.transpose(1, 2, 0)
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr[..., :3]


def rgb_to_rgba(rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    out = np.empty((*rgb.shape[:2], 4), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255 if alpha is None else alpha
    return out


def mask_to_tensor(mask: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(mask.astype(np.float32) / 255)[None, None].to(device=device, dtype=dtype)


# -- latents -----------------------------------------------------------------------------------------
def encode_latents(run: Run, x: torch.Tensor) -> torch.Tensor:
    vae = run.model.vae
    with torch.no_grad():
        return vae.encode(x).latent_dist.mean * vae.config.scaling_factor


def decode_latents(run: Run, z: torch.Tensor) -> torch.Tensor:
    vae = run.model.vae
    with torch.no_grad():
        return vae.decode(z / vae.config.scaling_factor).sample


def latent_factor(model: LoadedModel) -> int:
    if model.vae is None:
        return 1
    return 2 ** (len(model.vae.config.block_out_channels) - 1)


def _latent_rgb_projection(run: Run) -> torch.Tensor:
    """A linear map latents -> RGB fitted once per model from one small decode: a cheap preview."""
    cached = getattr(run.model, "_preview_projection", None)
    if cached is not None:
        return cached
    channels = run.model.unet.config.out_channels
    gen = torch.Generator(device="cpu").manual_seed(0)
    z = torch.randn((2, channels, 8, 8), generator=gen).to(run.device, run.dtype)
    rgb = decode_latents(run, z).float()
    f = latent_factor(run.model)
    rgb_small = torch.nn.functional.avg_pool2d(rgb, f)
    a = torch.cat([z.float().permute(0, 2, 3, 1).reshape(-1, channels), torch.ones(z.numel() // channels, 1,
                                                                                    device=z.device)], 1)
    b = rgb_small.permute(0, 2, 3, 1).reshape(-1, rgb.shape[1])
    projection = torch.linalg.lstsq(a.cpu(), b.cpu()).solution
    run.model._preview_projection = projection  # type: ignore[attr-defined]
    return projection


def preview_rgba(run: Run, x0: torch.Tensor) -> np.ndarray:
    """A preview image of the predicted clean sample (latents via the cheap linear projection)."""
    if run.model.vae is not None:
        proj = _latent_rgb_projection(run)
        z = x0[:1].float().cpu().permute(0, 2, 3, 1)
        rgb = torch.cat([z, torch.ones(*z.shape[:3], 1)], -1) @ proj
        f = latent_factor(run.model)  # nearest-neighbour up to image size, so it lines up on the canvas
        small = rgb_to_rgba(tensor_to_rgb(rgb.permute(0, 3, 1, 2)))
        return np.repeat(np.repeat(small, f, axis=0), f, axis=1)
    return rgb_to_rgba(tensor_to_rgb(x0[:1]))


# -- the model function ------------------------------------------------------------------------------
def _rows(t: torch.Tensor, n: int) -> torch.Tensor:
    """`t` for a batch of n rows: as it is, one row expanded, or repeated (CFG doubles a batch of tiles)."""
    if t.shape[0] == n:
        return t
    if t.shape[0] == 1:
        return t.expand(n, *t.shape[1:])
    if n % t.shape[0]:
        raise ValueError(f"a condition of {t.shape[0]} rows cannot serve a batch of {n}")
    return t.repeat(n // t.shape[0], *([1] * (t.dim() - 1)))


def conditioned_model(run: Run, *, concat: torch.Tensor | None = None, class_index: int | None = None,
                      prompt: str = "", negative_prompt: str = "", guidance_scale: float = 1.0) -> ModelFn:
    """The UNet as the loop's ModelFn, with concatenated channels, class or text conditioning and CFG."""
    unet = run.model.unet
    manifest = run.manifest
    kind = manifest.conditioning

    if manifest.residual:  # a fidelity model: guidance would push it away from its best estimate
        guidance_scale = 1.0
    if manifest.residual and concat is None:
        raise TaskError(f"the model in {run.model.path} corrects an input image (residual); it cannot generate "
                        "without one")

    def call(x_in: torch.Tensor, t: torch.Tensor, extra: dict[str, Any]) -> torch.Tensor:
        cond = _rows(concat, x_in.shape[0]).to(x_in) if concat is not None else None
        if cond is not None:
            x_in = torch.cat([x_in, cond], dim=1)
        with torch.no_grad():
            out = unet(x_in, t, **extra).sample
        if manifest.residual:  # the UNet predicted the correction of its image condition
            assert cond is not None
            out = out + cond[:, : out.shape[1]]
        return out

    if kind == "class":
        if class_index is None:
            class_index = manifest.null_class
        null = manifest.null_class

        def by_class(x_in: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            labels = torch.where(cond, torch.tensor(class_index), torch.tensor(null)).to(x_in.device)
            return call(x_in, t, {"class_labels": labels})

        return guided_model(by_class, guidance_scale if class_index != null else 1.0)
    if kind == "text":
        encoder = run.model.text_encoder
        if encoder is None:
            raise TaskError(f"the model in {run.model.path} is text-conditioned but has no text encoder")
        with torch.no_grad():
            emb = encoder.encode([negative_prompt, prompt]).to(run.device, run.dtype)

        def by_text(x_in: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
            states = torch.where(cond[:, None, None], emb[1:2], emb[0:1])
            return call(x_in, t, {"encoder_hidden_states": states})

        return guided_model(by_text, guidance_scale)
    return lambda x_in, t: call(x_in, t, {})


def task_class_index(run: Run, *names: str) -> int | None:
    """The class of a model that is conditioned on the task it performs (repair models name theirs
    restore, x2, x4, inpaint): the first of `names` it knows; None (the null class) otherwise."""
    if run.manifest.conditioning != "class":
        return None
    known = run.manifest.class_names
    return next((known.index(n) for n in names if n in known), None)


def class_index_for(run: Run, class_name: str) -> int | None:
    names = run.manifest.class_names
    if not class_name:
        return None
    if class_name in names:
        return names.index(class_name)
    raise TaskError(f"the model knows no class '{class_name}'; its classes are: {', '.join(names) or 'none'}")


# -- sampling ----------------------------------------------------------------------------------------
def sample(run: Run, model_fn: ModelFn, shape: tuple[int, ...], *, init: torch.Tensor | None = None,
           strength: float = 1.0, noise: torch.Tensor | None = None, blend: BlendFn | None = None,
           step_offset: int = 0, step_total: int | None = None, resample: int = 1,
           step_weight: int = 1) -> torch.Tensor:
    """Run the loop with the run's sampler, seed, cancel token and progress (with previews).

    `step_offset`/`step_total` let a task that samples several tiles report one continuous progress;
    `step_weight` counts each step that many times (a batch of tiles sampled together).
    """
    scheduler = make_scheduler(run.sampler, run.model.scheduler_config)
    context = run.context
    if run.model.vae is None and run.model.scheduler_config.get("clip_sample"):  # a pixel model
        model_fn = clamped_model(model_fn, scheduler)

    def report(step: LoopStep) -> None:
        total = step_total or step.total
        preview = preview_rgba(run, step.x0) if step.x0 is not None else None
        context.report(StepProgress(step=step_offset + step.step * step_weight, total=total,
                                    evaluations=step.evaluations,
                                    preview=preview))

    with torch.no_grad(), translate_out_of_memory(run.device):
        z = denoise(model_fn, scheduler, run.sampler, shape=shape, steps=run.steps, generator=run.generator,
                    device=run.device, dtype=run.dtype, init=init, strength=strength, noise=noise,
                    blend=blend, cancel=context.cancel,
                    callback=report if context.progress is not None else None,
                    preview_every=context.preview_every, resample=resample)
    return nan_guard(z)


TaskRunner = Callable[[TaskRequest, RunContext], "TaskResult"]


def guarded(runner: TaskRunner) -> TaskRunner:
    """Device guards for a task runner: out-of-memory becomes a clear DeviceOutOfMemory, and a
    half-precision run that produced NaN or inf is run again in fp32 (never a black image)."""

    @functools.wraps(runner)
    def run(request: TaskRequest, context: RunContext) -> TaskResult:
        try:
            with translate_out_of_memory(request.device):
                return runner(request, context)
        except NonFiniteResult:
            if pick_dtype(pick_device(request.device), request.precision) == torch.float32:
                raise NonFiniteResult("the model produced NaN or infinite values in fp32: the checkpoint or the "
                                      "input is broken") from None
        result = runner(dataclasses.replace(request, precision="fp32"), context)
        result.notes.append("half precision gave NaN values; this result was computed in fp32")
        return result

    return run


def record(run: Run, **extra: Any) -> GenerationRecord:
    params = params_to_record(run.request.params)
    params.update(extra)
    params.pop("sampler", None), params.pop("steps", None), params.pop("seed", None)
    return GenerationRecord(
        task=run.request.task, model=str(run.model.path), model_hash=run.model.unet_sha256,
        sampler=run.sampler.name, steps=run.steps, seed=run.seed, params=params,
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), version=__version__,
    )


def multiple_of(model: LoadedModel) -> int:
    """Image sizes must be multiples of this (UNet down-sampling times the VAE factor)."""
    levels = len(model.unet.config.block_out_channels)
    return latent_factor(model) * 2 ** (levels - 1)


ProgressFn = Callable[[int, int], None]
