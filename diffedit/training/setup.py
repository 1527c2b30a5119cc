"""Everything a run needs before its first step: checked data, the model (new or resumed), the frozen
VAE and text encoder. Kept apart from the loop so every error here comes before any training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffedit.diffusion.checkpoints import CheckpointError, load_checkpoint
from diffedit.diffusion.models import PRESETS, TASK_DEFAULTS, ModelBundle, build
from diffedit.training import data as data_mod
from diffedit.training import degrade, repair, state
from diffedit.training.config import LOSSES, RESUME_FIXED, TrainConfig, TrainingError

TRAINABLE_TASKS = ("generate", "inpaint", "super-resolve", "restore", "segment", "repair")
PATCH_TASKS = ("inpaint", "super-resolve", "restore", "repair")  # tasks whose models see native-scale pixels


def crop_mode(c: TrainConfig) -> str:
    """"patch" for tasks that must keep the photos' detail, "resize" (whole images) for the others."""
    if c.crop != "auto":
        return c.crop
    return "patch" if c.task in PATCH_TASKS else "resize"



@dataclass
class Prepared:
    index: data_mod.DataIndex
    train: list[data_mod.Item]
    val: list[data_mod.Item]
    bundle: ModelBundle
    resume_from: Path | None = None
    resume_state: dict[str, Any] | None = None


def check_config(c: TrainConfig) -> str:
    """Settings errors as one clear message; returns the conditioning the run will use."""
    if c.task not in TRAINABLE_TASKS:
        raise TrainingError(f"training task '{c.task}' is not supported; choose one of {', '.join(TRAINABLE_TASKS)}"
                            + (" (paired img2img data is not supported yet)" if c.task == "img2img" else "")
                            + (" (a VAE trains with diffedit.training.vae.VAETrainer)" if c.task == "vae" else ""))
    if c.preset not in PRESETS:
        raise TrainingError(f"unknown preset '{c.preset}'; choose one of {', '.join(PRESETS)}")
    for key in ("steps", "batch", "accumulate", "checkpoint_every", "keep", "sample_steps"):
        if getattr(c, key) < 1:
            raise TrainingError(f"{key.replace('_', '-')} must be at least 1, not {getattr(c, key)}")
    if not c.lr > 0:
        raise TrainingError(f"lr must be positive, not {c.lr}")
    if c.time_limit is not None and not c.time_limit > 0:
        raise TrainingError(f"the time limit must be positive, not {c.time_limit:g} s")
    if c.workers is not None and c.workers < 0:
        raise TrainingError(f"workers must be 0 (build batches in the training process) or more, not {c.workers}")
    if c.loss not in LOSSES:
        raise TrainingError(f"unknown loss '{c.loss}'; choose one of {', '.join(LOSSES)}")
    if c.crop not in ("auto", "resize", "patch"):
        raise TrainingError(f"unknown crop '{c.crop}'; choose auto, resize or patch")
    if c.task == "repair":
        if c.latent or (c.conditioning or "class") != "class":
            raise TrainingError("repair models are pixel models conditioned on the degraded image and their task "
                                "(class): drop --latent and --conditioning")
        return "class"
    conditioning = c.conditioning or TASK_DEFAULTS[c.task][0]
    if conditioning == "class" and c.task not in ("generate", "restore"):
        raise TrainingError(f"class conditioning trains for generate (labels = sub-folders) or restore "
                            f"(labels = degradations), not '{c.task}'")
    if c.latent and c.task == "segment":
        raise TrainingError("latent segmentation models are not supported: train a pixel model")
    if c.latent and not c.vae:
        raise TrainingError("latent training needs a trained VAE (--vae FOLDER); a random one encodes nothing. "
                            "Train one first with `diffedit train --task vae --data DIR --out VAE_RUN`")
    if c.task == "super-resolve" and (c.scale_factor or 4) not in (2, 4):
        raise TrainingError(f"super-resolve trains x2 or x4 models, not x{c.scale_factor}")
    return conditioning


def load_data(c: TrainConfig, conditioning: str) -> tuple[data_mod.DataIndex, list[data_mod.Item],
                                                             list[data_mod.Item]]:
    need = data_mod.needs(c.task, conditioning)
    index = data_mod.scan(c.data, **need)
    # patches: one photo gives a whole batch of different crops, so a batch may exceed the image count
    per_batch = 1 if crop_mode(c) == "patch" else c.batch
    data_mod.validate(index, batch=per_batch, captions=need["captions"], masks=need["masks"],
                      min_classes=1 if need["labels"] else 0)
    train_ids, val_ids = data_mod.split(len(index.items), c.val_fraction, c.seed)
    if len(train_ids) < per_batch:  # a small folder: every image trains, none validates
        train_ids, val_ids = list(range(len(index.items))), []
    val_ids = val_ids[: c.val_max]
    return index, [index.items[i] for i in train_ids], [index.items[i] for i in val_ids]


def load_vae(path: str) -> Any:
    """An AutoencoderKL from a diffusers vae folder or a checkpoint folder that has vae/."""
    import diffusers

    root = Path(path)
    folder = root / "vae" if (root / "vae" / "config.json").is_file() else root
    if not (folder / "config.json").is_file():
        raise TrainingError(f"{root}: no VAE here (expected config.json, or vae/config.json)")
    try:
        vae = diffusers.AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # diffusers raises many kinds for a broken folder
        raise TrainingError(f"{folder}: not a readable AutoencoderKL ({str(exc).splitlines()[0][:120]})") from None
    return vae.eval().requires_grad_(False)


def text_encoder_for(c: TrainConfig, conditioning: str) -> Any:
    """The frozen text encoder of a text-conditioned run: MiniLM ("minilm", the default), the CLIP (or
    other registered encoder) in a checkpoint or Stable Diffusion folder's text_encoder/ + tokenizer/,
    or None (build() then makes the preset's random CLIP, seeded)."""
    if conditioning != "text" or not c.text_encoder:
        return None
    from diffedit.diffusion.text import TextEncoderError, load_minilm, load_text_encoder

    try:
        if c.text_encoder.lower() == "minilm":
            return load_minilm()
        folder = Path(c.text_encoder)
        if not (folder / "text_encoder").is_dir() or not (folder / "tokenizer").is_dir():
            raise TrainingError(f"{folder}: no text encoder here (expected text_encoder/ and tokenizer/ folders, "
                                "as a checkpoint or a Stable Diffusion folder has); or use --text-encoder minilm")
        return load_text_encoder(folder)
    except TextEncoderError as exc:
        raise TrainingError(str(exc)) from None


def new_bundle(c: TrainConfig, conditioning: str, class_names: list[str]) -> ModelBundle:
    if c.task == "repair":
        return build("restore", "class", c.preset, c.size, class_names=repair.CLASSES, condition_channels=3,
                     mask_channel=True, prediction_type="sample",
                     residual=True, tasks=repair.TASKS, scale_factors=repair.SCALE_FACTORS,
                     scale_factor=repair.SCALE_FACTORS[0], hole_fill="smooth", seed=c.seed, default_steps=1,
                     description="Repairs photos: removes noise and JPEG artifacts, upscales x2/x4 and fills "
                                 "holes. One step: the most faithful result; more steps: more invented detail.")
    if conditioning == "class" and c.task == "restore":
        class_names = list(degrade.RESTORE_DEGRADATIONS)
    try:
        bundle = build(c.task, conditioning, c.preset, c.size, class_names=class_names, latent=c.latent,
                       prediction_type=c.prediction_type, scale_factor=c.scale_factor, start=c.start,
                       text_encoder=text_encoder_for(c, conditioning), seed=c.seed)
    except (ValueError, CheckpointError) as exc:
        raise TrainingError(str(exc)) from None
    if c.latent:
        assert c.vae
        vae = load_vae(c.vae)
        built = bundle.vae.config
        for key in ("in_channels", "latent_channels"):
            if vae.config[key] != built[key]:
                raise TrainingError(f"{c.vae}: the VAE has {key} {vae.config[key]}, the '{c.preset}' preset "
                                    f"needs {built[key]}")
        if len(vae.config.block_out_channels) != len(built.block_out_channels):
            raise TrainingError(f"{c.vae}: the VAE scales by 2^{len(vae.config.block_out_channels) - 1}, the "
                                f"'{c.preset}' preset expects 2^{len(built.block_out_channels) - 1}")
        bundle.vae = vae
    return bundle


def check_same_settings(c: TrainConfig, before: dict[str, Any]) -> None:
    """A resumed run keeps the settings (RESUME_FIXED) of the run it continues."""
    changed = [k for k in RESUME_FIXED if k in before and before[k] != getattr(c, k)]
    if changed:
        raise TrainingError(f"cannot resume {c.out}: {', '.join(changed)} differ from the run being resumed "
                            f"({', '.join(f'{k}={before[k]!r}' for k in changed)})")


def resumed_bundle(c: TrainConfig, folder: Path) -> tuple[ModelBundle, dict[str, Any]]:
    """The latest checkpoint's modules with the raw (non-EMA) weights from its training state."""
    try:
        loaded = load_checkpoint(folder)
        saved = state.load_state(folder)
    except (CheckpointError, OSError, RuntimeError) as exc:
        raise TrainingError(f"cannot resume from {folder}: {str(exc).splitlines()[0]}") from None
    check_same_settings(c, saved.get("config", {}))
    loaded.unet.load_state_dict(saved["unet"])
    manifest = dataclasses.replace(loaded.manifest)
    bundle = ModelBundle(manifest, loaded.unet, dict(loaded.scheduler_config), loaded.vae, loaded.text_encoder)
    if bundle.vae is not None:
        bundle.vae.requires_grad_(False)
    return bundle, saved


def prepare(c: TrainConfig) -> Prepared:
    """Check settings, data and the output folder; build or resume the model. Nothing trains yet."""
    conditioning = check_config(c)
    index, train, val = load_data(c, conditioning)
    out = Path(c.out)
    done = state.completed(out)
    if c.resume:
        if not done:
            raise TrainingError(f"{out}: no checkpoint to resume from (expected checkpoints/step-N with its "
                                ".state.pt)")
        bundle, saved = resumed_bundle(c, done[-1][1])
        if bundle.manifest.class_names and c.task == "generate" and bundle.manifest.class_names != index.class_names:
            raise TrainingError(f"{c.data}: the class folders ({', '.join(index.class_names)}) differ from the "
                                f"model's classes ({', '.join(bundle.manifest.class_names)})")
        return Prepared(index, train, val, bundle, done[-1][1], saved)
    if done:
        raise TrainingError(f"{out}: already holds checkpoints of a run; resume it (--resume) or choose another "
                            "output folder")
    bundle = new_bundle(c, conditioning, index.class_names)
    if c.init:
        start_from(bundle, c.init)
    return Prepared(index, train, val, bundle)


def start_from(bundle: ModelBundle, folder: str) -> None:
    """Fine-tuning: the new run's UNet takes the weights of checkpoint `folder` (same preset, size and task).

    Only the weights come from there; the schedule, optimizer and EMA start fresh, so a shipped model
    can be fine-tuned on a user's own photos.
    """
    try:
        loaded = load_checkpoint(folder)
    except (CheckpointError, OSError) as exc:
        raise TrainingError(f"--init {folder}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    mine, theirs = bundle.manifest, loaded.manifest
    for key in ("task", "prediction_type", "conditioning", "residual", "latent"):
        if getattr(mine, key) != getattr(theirs, key):
            raise TrainingError(f"--init {folder}: its {key.replace('_', ' ')} is {getattr(theirs, key)!r}, this run's "
                                f"is {getattr(mine, key)!r}; fine-tune with the settings it was trained with")
    own, given = bundle.unet.state_dict(), loaded.unet.state_dict()
    different = sorted(k for k in own.keys() | given.keys() if k not in own or k not in given
                       or own[k].shape != given[k].shape)
    if different:
        raise TrainingError(f"--init {folder}: its UNet differs from the one this run builds ({len(different)} "
                            f"weights differ, e.g. {different[0]}); use the preset and conditioning "
                            "it was trained with")
    bundle.unet.load_state_dict({k: v.to(own[k].dtype) for k, v in given.items()})


def fit_scaling_factor(vae: Any, items: list[data_mod.Item], size: int, channels: int,
                       device: torch.device) -> float:
    """1 / std of the latents of (up to 32) training images, as Stable Diffusion chose 0.18215."""
    rng = np.random.default_rng(0)
    examples = [data_mod.load_example(item, size, channels, rng, augment=False) for item in items[:32]]
    x = torch.from_numpy(np.stack([e.image for e in examples]).astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
    with torch.no_grad():
        z = vae.encode(x.to(device)).latent_dist.mean
    std = float(z.float().std())
    return 1.0 / std if std > 0 else 1.0
