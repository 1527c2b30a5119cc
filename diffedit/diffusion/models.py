"""What a model is and how to make one: the `diffedit.json` manifest that describes a checkpoint,
and builders over diffusers (UNet2DModel, UNet2DConditionModel, AutoencoderKL) in three presets.

Kinds of model `build` makes, by conditioning:
- none: unconditional UNet2DModel;
- class: UNet2DModel with `num_class_embeds = len(class_names) + 1`, the last index the null class
  (classifier-free guidance drops labels to it);
- concat: UNet2DModel whose input is the noisy image + condition channels (+1 mask), as SR3/Palette do;
- text: UNet2DConditionModel with `cross_attention_dim` = the text encoder width (+ concat channels).
With `latent=True` the UNet runs on the latents of an AutoencoderKL (latent diffusion).

torch and diffusers are imported inside functions, so reading a manifest stays light.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffedit.diffusion.text import TextEncoder

MANIFEST_NAME = "diffedit.json"
MANIFEST_VERSION = 1
TASKS = ("generate", "inpaint", "super-resolve", "restore", "img2img", "segment")
CONDITIONINGS = ("none", "class", "text", "concat")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
STARTS = ("noise", "degraded")
HOLE_FILLS = ("zero", "smooth")
DEGRADED_START_TASKS = ("inpaint", "super-resolve", "restore", "img2img")


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message starts with the file concerned and says what is wrong."""


# ---------------------------------------------------------------------------------------- manifest
_REQUIRED: Any = object()


def _get(data: dict[str, Any], key: str, kinds: tuple[type, ...], where: str, default: Any = _REQUIRED) -> Any:
    """`data[key]` checked against `kinds` (a bool is never taken for an int), or its default."""
    if key not in data:
        if default is _REQUIRED:
            raise CheckpointError(f"{where}: missing key '{key}'")
        return default
    value = data[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise CheckpointError(f"{where}: '{key}' must be {names}, not {value!r}")
    return value


@dataclass
class Provenance:
    """How a checkpoint was made: the manifest's `made` object."""

    data: str = ""  # the training data (a folder name or a description)
    steps: int = 0
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=dict)  # diffedit, torch, diffusers
    weights_sha256: dict[str, str] = field(default_factory=dict)  # relative path -> hex digest

    def to_json(self) -> dict[str, Any]:
        return {"data": self.data, "steps": self.steps, "seed": self.seed, "versions": dict(self.versions),
                "weights_sha256": dict(self.weights_sha256)}

    @classmethod
    def from_json(cls, data: Any, source: str) -> Provenance:
        where = f"{source}: made"
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: must be a JSON object")
        versions = _get(data, "versions", (dict,), where, {})
        hashes = _get(data, "weights_sha256", (dict,), where, {})
        for rel, digest in hashes.items():
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or not parts:
                raise CheckpointError(f"{where}: weights_sha256 path {rel!r} must be relative to the folder")
            if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest)):
                raise CheckpointError(f"{where}: weights_sha256[{rel!r}] is not a SHA-256 hex digest")
        return cls(data=_get(data, "data", (str,), where, ""), steps=_get(data, "steps", (int,), where, 0),
                   seed=_get(data, "seed", (int, type(None)), where, None),
                   versions={str(k): str(v) for k, v in versions.items()}, weights_sha256=dict(hashes))


@dataclass
class Manifest:
    """`diffedit.json`: what a checkpoint does and how it was made. The keys are a contract.

    manifest_version    1 (anything else is refused)
    task                generate | inpaint | super-resolve | restore | img2img | segment
    conditioning        none | class | text | concat; class and text may also take concatenated channels
    image_size          training resolution in pixels (square)
    channels            channels the model generates: 3 RGB, 1 grey, or 1 for a segmentation mask
    condition_channels  channels concatenated to the UNet input (counted in latents for latent models)
    mask_channel        one more input channel holding the mask (inpainting)
    scale_factor        the upscaling factor of a super-resolve model, else 1
    latent              the UNet denoises the latents of vae/ (AutoencoderKL)
    class_names         labels for conditioning "class"; index len(class_names) is the null class (CFG)
    default_sampler     a sampler name from diffedit.diffusion.samplers
    default_steps       sampler steps when a request leaves steps at 0 (25 unless the model knows better)
    prediction_type     epsilon | v_prediction | sample
    start               "noise", or "degraded": bridge-style restoration starts from the input image
    tasks               further tasks the same weights serve (a multi-task "repair" model: restore,
                        super-resolve and inpaint); `task` is the main one
    residual            the UNet predicts the correction to its image condition: x0 = condition + output
                        (prediction_type "sample"), so one step is already the degraded image corrected
    scale_factors       the factors a super-resolve-capable model was trained for (default: [scale_factor])
    hole_fill           how the inpainting condition fills the hole: "zero" (Palette, SD) or "smooth"
                        (diffedit.diffusion.fill.smooth_fill, the start a residual model corrects)
    license, source     free text: the weights' license and where they came from (model manager)
    made                {data, steps, seed, versions: {diffedit, torch, diffusers}, weights_sha256}
    description         free text

    Reading needs only manifest_version, task, conditioning, image_size and channels (so a hand-written
    manifest for a plain model stays short); writing always writes every key.
    """

    task: str
    conditioning: str
    image_size: int
    channels: int
    condition_channels: int = 0
    mask_channel: bool = False
    scale_factor: int = 1
    latent: bool = False
    class_names: list[str] = field(default_factory=list)
    default_sampler: str = "ddim"
    default_steps: int = 25
    prediction_type: str = "epsilon"
    start: str = "noise"
    tasks: list[str] = field(default_factory=list)
    residual: bool = False
    scale_factors: list[int] = field(default_factory=list)
    hole_fill: str = "zero"
    license: str = ""
    source: str = ""
    made: Provenance = field(default_factory=Provenance)
    description: str = ""
    manifest_version: int = MANIFEST_VERSION

    @property
    def null_class(self) -> int | None:
        """The class index reserved for "no class" (classifier-free guidance), for class models."""
        return len(self.class_names) if self.conditioning == "class" else None

    @property
    def served_tasks(self) -> list[str]:
        """Every task these weights serve: the main task first."""
        return [self.task, *[t for t in self.tasks if t != self.task]]

    @property
    def upscale_factors(self) -> list[int]:
        return list(self.scale_factors) or [self.scale_factor]

    def to_json(self) -> dict[str, Any]:
        return {"manifest_version": self.manifest_version, "task": self.task, "conditioning": self.conditioning,
                "image_size": self.image_size, "channels": self.channels,
                "condition_channels": self.condition_channels, "mask_channel": self.mask_channel,
                "scale_factor": self.scale_factor, "latent": self.latent, "class_names": list(self.class_names),
                "default_sampler": self.default_sampler, "default_steps": self.default_steps,
                "prediction_type": self.prediction_type,
                "start": self.start, "tasks": list(self.tasks), "residual": self.residual,
                "scale_factors": list(self.scale_factors), "hole_fill": self.hole_fill, "license": self.license,
                "source": self.source, "made": self.made.to_json(), "description": self.description}

    @classmethod
    def from_json(cls, data: Any, source: str = MANIFEST_NAME) -> Manifest:
        """Parse and check a manifest; CheckpointError names `source` and the offending key."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: must hold a JSON object")
        version = _get(data, "manifest_version", (int,), source)
        if version != MANIFEST_VERSION:
            raise CheckpointError(f"{source}: unknown manifest_version {version} (this DiffEdit reads version "
                                  f"{MANIFEST_VERSION}; a newer DiffEdit may have written it)")
        names = _get(data, "class_names", (list,), source, [])
        if not all(isinstance(n, str) for n in names):
            raise CheckpointError(f"{source}: 'class_names' must be a list of strings")
        manifest = cls(
            task=_get(data, "task", (str,), source), conditioning=_get(data, "conditioning", (str,), source),
            image_size=_get(data, "image_size", (int,), source), channels=_get(data, "channels", (int,), source),
            condition_channels=_get(data, "condition_channels", (int,), source, 0),
            mask_channel=_get(data, "mask_channel", (bool,), source, False),
            scale_factor=_get(data, "scale_factor", (int,), source, 1),
            latent=_get(data, "latent", (bool,), source, False), class_names=list(names),
            default_sampler=_get(data, "default_sampler", (str,), source, "ddim"),
            default_steps=_get(data, "default_steps", (int,), source, 25),
            prediction_type=_get(data, "prediction_type", (str,), source, "epsilon"),
            start=_get(data, "start", (str,), source, "noise"),
            tasks=_str_list(data, "tasks", source), residual=_get(data, "residual", (bool,), source, False),
            scale_factors=_int_list(data, "scale_factors", source),
            hole_fill=_get(data, "hole_fill", (str,), source, "zero"),
            license=_get(data, "license", (str,), source, ""), source=_get(data, "source", (str,), source, ""),
            made=Provenance.from_json(data.get("made", {}), source),
            description=_get(data, "description", (str,), source, ""))
        manifest.check(source)
        return manifest

    def check(self, source: str = MANIFEST_NAME) -> None:
        """Values must be known and consistent with each other (CheckpointError names the key)."""
        for key, allowed in (("task", TASKS), ("conditioning", CONDITIONINGS),
                             ("prediction_type", PREDICTION_TYPES), ("start", STARTS), ("hole_fill", HOLE_FILLS)):
            if getattr(self, key) not in allowed:
                raise CheckpointError(f"{source}: unknown {key} {getattr(self, key)!r} "
                                      f"(one of {', '.join(allowed)})")
        for key, low in (("image_size", 1), ("channels", 1), ("condition_channels", 0), ("scale_factor", 1),
                         ("default_steps", 1)):
            if getattr(self, key) < low:
                raise CheckpointError(f"{source}: '{key}' must be at least {low}, not {getattr(self, key)}")
        extra = self.condition_channels + int(self.mask_channel)
        if self.conditioning == "class" and not self.class_names:
            raise CheckpointError(f"{source}: conditioning 'class' needs class_names")
        if self.conditioning != "class" and self.class_names:
            raise CheckpointError(f"{source}: class_names given but conditioning is {self.conditioning!r}")
        if len(set(self.class_names)) != len(self.class_names):
            raise CheckpointError(f"{source}: class_names has duplicates")
        if self.conditioning == "concat" and not extra:
            raise CheckpointError(f"{source}: conditioning 'concat' needs condition_channels or mask_channel")
        if self.conditioning == "none" and extra:
            raise CheckpointError(f"{source}: conditioning 'none' takes no condition channels; use 'concat'")
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise CheckpointError(f"{source}: unknown task {unknown[0]!r} in 'tasks' (one of {', '.join(TASKS)})")
        if any(f < 1 for f in self.scale_factors):
            raise CheckpointError(f"{source}: 'scale_factors' must be positive integers")
        if self.residual and (self.prediction_type != "sample" or self.condition_channels != self.channels
                              or self.latent):
            raise CheckpointError(f"{source}: 'residual' needs prediction_type 'sample', a pixel model and as many "
                                  "condition channels as generated channels (the output corrects the condition)")
        if self.start == "degraded" and self.task not in DEGRADED_START_TASKS:
            raise CheckpointError(f"{source}: start 'degraded' needs a task that has an input image "
                                  f"({', '.join(DEGRADED_START_TASKS)}), not {self.task!r}")


def _str_list(data: dict[str, Any], key: str, source: str) -> list[str]:
    value = _get(data, key, (list,), source, [])
    if not all(isinstance(v, str) for v in value):
        raise CheckpointError(f"{source}: '{key}' must be a list of strings")
    return list(value)


def _int_list(data: dict[str, Any], key: str, source: str) -> list[int]:
    value = _get(data, key, (list,), source, [])
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise CheckpointError(f"{source}: '{key}' must be a list of integers")
    return list(value)


# ----------------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """Sizes of one preset. `attention[i]` is True where level i (highest resolution first) attends."""

    name: str
    image_size: int  # default resolution
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    attention: tuple[bool, ...]
    head_dim: int
    vae_block_out_channels: tuple[int, ...]  # downscale 2 ** (len - 1)
    vae_layers_per_block: int
    latent_channels: int
    text_width: int  # of the random CLIP text encoder built when none is given
    text_layers: int
    text_heads: int


PRESETS: dict[str, Preset] = {
    # tiny: for tests; ~1.2 M parameters, a forward pass at 32-64 px takes milliseconds on a CPU.
    "tiny": Preset("tiny", 32, (32, 64, 64), 1, (False, False, True), 8, (32, 64), 1, 4, 32, 2, 2),
    # conv: no attention in its levels (only diffusers' middle block attends, at 1/8 scale), so it
    # generalizes from small training patches and costs about the same per pixel at any tile size;
    # ~9.5 M parameters, most in the coarse levels, cheap at full resolution (a 256 px forward pass
    # costs about what tiny's does). For restoration (repair) models.
    "conv": Preset("conv", 64, (32, 64, 128, 192), 2, (False, False, False, False), 32,
                   (64, 128, 128), 1, 4, 32, 2, 2),
    "small": Preset("small", 64, (64, 128, 128, 256), 2, (False, False, True, True), 32,
                    (64, 128, 128), 1, 4, 256, 4, 4),
    "base": Preset("base", 256, (128, 256, 256, 512), 2, (False, False, True, True), 64,
                   (128, 256, 512, 512), 2, 4, 512, 8, 8),
}

# Per task: conditioning, generated channels, condition channels (None: as many as the model
# generates, i.e. the input image or its latents), mask channel, scale factor.
TASK_DEFAULTS: dict[str, tuple[str, int, int | None, bool, int]] = {
    "generate": ("none", 3, 0, False, 1),
    "inpaint": ("concat", 3, None, True, 1),  # masked image + mask, as Palette/SD-inpainting do
    "super-resolve": ("concat", 3, None, False, 4),  # the low-resolution image, upsampled (SR3)
    "restore": ("concat", 3, None, False, 1),  # the degraded image
    "img2img": ("concat", 3, None, False, 1),  # paired translation; SDEdit-style img2img uses generate models
    "segment": ("concat", 1, 3, False, 1),  # generates a 1-channel mask from an RGB image
}


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def unet_config(preset: str, *, sample_size: int, in_channels: int, out_channels: int,
                num_class_embeds: int | None = None, cross_attention_dim: int | None = None) -> dict[str, Any]:
    """A diffusers UNet config (with `_class_name`): UNet2DConditionModel when `cross_attention_dim`."""
    p = _preset(preset)
    common: dict[str, Any] = {"sample_size": sample_size, "in_channels": in_channels, "out_channels": out_channels,
                              "block_out_channels": p.block_out_channels, "layers_per_block": p.layers_per_block,
                              "norm_num_groups": 32}
    if cross_attention_dim is None:
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in p.attention)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(p.attention))
        return {"_class_name": "UNet2DModel", **common, "down_block_types": down, "up_block_types": up,
                "attention_head_dim": p.head_dim, "num_class_embeds": num_class_embeds}
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in p.attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(p.attention))
    # diffusers' UNet2DConditionModel reads `attention_head_dim` as the number of heads per block.
    heads = tuple(max(1, c // p.head_dim) for c in p.block_out_channels)
    return {"_class_name": "UNet2DConditionModel", **common, "down_block_types": down, "up_block_types": up,
            "attention_head_dim": heads, "cross_attention_dim": cross_attention_dim,
            "num_class_embeds": num_class_embeds}


def vae_config(preset: str, *, channels: int, image_size: int) -> dict[str, Any]:
    """An AutoencoderKL config. `scaling_factor` starts at 1.0: training sets it to 1 / std(latents)."""
    p = _preset(preset)
    n = len(p.vae_block_out_channels)
    return {"_class_name": "AutoencoderKL", "in_channels": channels, "out_channels": channels,
            "down_block_types": ("DownEncoderBlock2D",) * n, "up_block_types": ("UpDecoderBlock2D",) * n,
            "block_out_channels": p.vae_block_out_channels, "layers_per_block": p.vae_layers_per_block,
            "latent_channels": p.latent_channels, "norm_num_groups": 32, "sample_size": image_size,
            "scaling_factor": 1.0}


def scheduler_config(prediction_type: str = "epsilon", beta_schedule: str | None = None, *,
                     latent: bool = False, timestep_spacing: str = "leading") -> dict[str, Any]:
    """The DDPM training schedule the sampler configs start from (1000 steps).

    Default betas: "linear" (DDPM) in pixel space, "scaled_linear" (Stable Diffusion) for latents.
    Clipping x0 to [-1, 1] only makes sense for pixels (DIFFUSERS_NOTES.md, 4). "trailing" spacing
    makes a one-step run start at t = 999 (pure noise) rather than t = 1: what residual repair models
    need, whose first step is their best fidelity estimate.
    """
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction_type {prediction_type!r}; choose one of {', '.join(PREDICTION_TYPES)}")
    schedule = beta_schedule or ("scaled_linear" if latent else "linear")
    betas = {"linear": (1e-4, 0.02), "scaled_linear": (0.00085, 0.012), "squaredcos_cap_v2": (1e-4, 0.02)}
    if schedule not in betas:
        raise ValueError(f"unknown beta_schedule {schedule!r}; choose one of {', '.join(betas)}")
    return {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": schedule,
            "beta_start": betas[schedule][0], "beta_end": betas[schedule][1], "prediction_type": prediction_type,
            "clip_sample": not latent, "timestep_spacing": timestep_spacing}


def plain_config(config: Any) -> dict[str, Any]:
    """A scheduler config as a plain dict without diffusers' bookkeeping keys (but with _class_name)."""
    return {k: v for k, v in dict(config).items() if not k.startswith("_") or k == "_class_name"}


# ------------------------------------------------------------------------------------------ build
@dataclass
class ModelBundle:
    """Freshly built (or trained) modules plus what `save_checkpoint` needs to describe them."""

    manifest: Manifest
    unet: Any
    scheduler_config: dict[str, Any]
    vae: Any = None
    text_encoder: TextEncoder | None = None

    def parameter_count(self) -> int:
        modules = [self.unet, self.vae, getattr(self.text_encoder, "model", None)]
        return sum(p.numel() for m in modules if m is not None for p in m.parameters())


def build(task: str, conditioning: str | None = None, preset: str = "tiny", image_size: int | None = None,
          channels: int | None = None, *, condition_channels: int | None = None, mask_channel: bool | None = None,
          class_names: Sequence[str] = (), latent: bool = False, prediction_type: str = "epsilon",
          beta_schedule: str | None = None, scale_factor: int | None = None, start: str = "noise",
          text_encoder: TextEncoder | None = None, seed: int | None = None, default_sampler: str = "ddim",
          description: str = "", tasks: Sequence[str] = (), residual: bool = False,
          scale_factors: Sequence[int] = (), hole_fill: str = "zero", default_steps: int = 25) -> ModelBundle:
    """Randomly initialised modules for `task`, with their manifest and DDPM scheduler config.

    Unset arguments come from the task (TASK_DEFAULTS) and the preset. Conditioning "none" means a
    plain UNet; concat channels go with "concat", "class" and "text". For "text" without
    `text_encoder`, a random CLIP text encoder of the preset's width is built (a stand-in until a
    pretrained one is given). With `seed`, the weights are the same on every run.
    """
    import torch

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    p = _preset(preset)
    default_cond, default_channels, default_extra, default_mask, default_scale = TASK_DEFAULTS[task]
    conditioning = conditioning or default_cond
    channels = channels or default_channels
    image_size = image_size or p.image_size
    plain = conditioning == "none"
    latent_channels = p.latent_channels if latent else channels
    if condition_channels is None:
        condition_channels = 0 if plain else (latent_channels if default_extra is None else default_extra)
    if mask_channel is None:
        mask_channel = default_mask and not plain
    factor = 2 ** (len(p.vae_block_out_channels) - 1) if latent else 1
    multiple = factor * 2 ** (len(p.block_out_channels) - 1)
    if image_size % multiple:
        raise ValueError(f"image size {image_size} must be a multiple of {multiple} for preset {preset!r}"
                         + (" with a VAE" if latent else ""))
    manifest = Manifest(task=task, conditioning=conditioning, image_size=image_size, channels=channels,
                        condition_channels=condition_channels, mask_channel=mask_channel,
                        scale_factor=scale_factor or default_scale, latent=latent, class_names=list(class_names),
                        default_sampler=default_sampler, prediction_type=prediction_type, start=start,
                        made=Provenance(seed=seed), description=description, tasks=list(tasks),
                        residual=residual, scale_factors=list(scale_factors), hole_fill=hole_fill,
                        default_steps=default_steps)
    manifest.check("model settings")
    sched = scheduler_config(prediction_type, beta_schedule, latent=latent,
                             timestep_spacing="trailing" if residual else "leading")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return _instantiate(manifest, p, sched, latent_channels, factor, text_encoder)


def _instantiate(manifest: Manifest, p: Preset, sched: dict[str, Any], latent_channels: int, factor: int,
                 text_encoder: TextEncoder | None) -> ModelBundle:
    import diffusers

    if manifest.conditioning == "text" and text_encoder is None:
        from diffedit.diffusion.text import build_tiny_clip

        text_encoder = build_tiny_clip(width=p.text_width, layers=p.text_layers, heads=p.text_heads)
    if manifest.conditioning != "text":
        text_encoder = None
    config = unet_config(p.name, sample_size=manifest.image_size // factor,
                         in_channels=latent_channels + manifest.condition_channels + int(manifest.mask_channel),
                         out_channels=latent_channels,
                         num_class_embeds=len(manifest.class_names) + 1 if manifest.class_names else None,
                         cross_attention_dim=text_encoder.width if text_encoder is not None else None)
    unet = getattr(diffusers, config["_class_name"]).from_config(config)
    vae = None
    if manifest.latent:
        vae = diffusers.AutoencoderKL.from_config(vae_config(p.name, channels=manifest.channels,
                                                             image_size=manifest.image_size))
    full_sched = plain_config(diffusers.DDPMScheduler.from_config(sched).config)
    return ModelBundle(manifest, unet.eval(), full_sched, vae.eval() if vae is not None else None, text_encoder)
