"""A Stable Diffusion folder read from its JSON alone (no torch): which kind of pipeline it is, and the
DiffEdit manifest that lets the generic tasks run it.

The kind follows the UNet's input channels rather than the pipeline's class name alone, because many
inpainting folders on disk say "StableDiffusionPipeline" in model_index.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffedit.diffusion.checkpoints import CheckpointError, Manifest, detect_stable_diffusion

PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
UPSCALE_PIPELINE = "StableDiffusionUpscalePipeline"
NOISE_LEVEL = 20  # the x4 upscaler pipeline's default noise on the low-resolution condition
PREFERRED_SAMPLER = "dpmpp-2m-karras"

# kind -> (DiffEdit task, what the UNet input holds besides the latents)
KINDS = {
    "generate": ("generate", "nothing"),
    "inpaint": ("inpaint", "the mask (1) and the masked image's latents"),
    "upscale": ("super-resolve", "the noised low-resolution image (3 RGB channels)"),
}


@dataclass(frozen=True)
class StableDiffusionFolder:
    """What a pipeline folder holds, as its JSON files say."""

    root: Path
    pipeline: str  # model_index.json's _class_name
    kind: str  # generate | inpaint | upscale
    unet_config: dict[str, Any]
    vae_config: dict[str, Any]
    scheduler_config: dict[str, Any]
    low_res_scheduler_config: dict[str, Any] | None = None  # the upscaler's condition noise schedule
    max_noise_level: int = 350

    @property
    def latent_channels(self) -> int:
        return int(self.vae_config.get("latent_channels", 4))

    @property
    def vae_factor(self) -> int:
        """Pixels per latent along each side (8 for SD 1/2, 4 for the x4 upscaler)."""
        return int(2 ** (len(self.vae_config.get("block_out_channels", (0, 0, 0, 0))) - 1))

    @property
    def noise_level(self) -> int:
        return min(NOISE_LEVEL, self.max_noise_level)


def is_stable_diffusion(path: str | os.PathLike[str]) -> bool:
    """The loader's `detect`: a folder whose model_index.json names a Stable Diffusion pipeline."""
    return detect_stable_diffusion(path) is not None


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (a Stable Diffusion folder needs it)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: must hold a JSON object")
    return data


def _kind(pipeline: str, unet: dict[str, Any], latent: int, where: Path) -> str:
    got = int(unet.get("in_channels", 4))
    if pipeline == UPSCALE_PIPELINE:
        kind, want = "upscale", latent + 3
    elif got == 2 * latent + 1:
        kind, want = "inpaint", got
    else:
        kind, want = "generate", latent
    if got != want:
        raise CheckpointError(f"{where}: in_channels is {got}; a {pipeline} UNet takes {want} "
                              f"({latent} latent channels + {KINDS[kind][1]})")
    if int(unet.get("out_channels", latent)) != latent:
        raise CheckpointError(f"{where}: out_channels is {unet.get('out_channels')} but the VAE has {latent} "
                              "latent channels")
    if unet.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise CheckpointError(f"{where}: _class_name {unet.get('_class_name')!r} is not UNet2DConditionModel")
    return kind


def read_folder(path: str | os.PathLike[str]) -> StableDiffusionFolder:
    """Check a pipeline folder's parts and configs; CheckpointError names the file that is wrong."""
    root = Path(path)
    pipeline = detect_stable_diffusion(root)
    if pipeline is None:
        raise CheckpointError(f"{root / 'model_index.json'}: missing or not a Stable Diffusion pipeline")
    index = _json(root / "model_index.json")
    for part in PARTS:
        if not (root / part).is_dir():
            raise CheckpointError(f"{root / part}: missing (a {pipeline} folder needs it)")
    unet, vae = _json(root / "unet" / "config.json"), _json(root / "vae" / "config.json")
    latent = int(vae.get("latent_channels", 4))
    kind = _kind(pipeline, unet, latent, root / "unet" / "config.json")
    low_res = _json(root / "low_res_scheduler" / "scheduler_config.json") if kind == "upscale" else None
    return StableDiffusionFolder(root, pipeline, kind, unet, vae, _json(root / "scheduler" / "scheduler_config.json"),
                                 low_res, int(index.get("max_noise_level", 350)))


def default_sampler() -> str:
    from diffedit.diffusion.samplers import sampler_names  # plain data, no torch

    return PREFERRED_SAMPLER if PREFERRED_SAMPLER in sampler_names() else "ddim"


def manifest_for(folder: StableDiffusionFolder) -> Manifest:
    """The manifest a DiffEdit checkpoint of the same model would carry, so the generic tasks accept it."""
    size = folder.unet_config.get("sample_size", 64)
    size = int(size if isinstance(size, int) else min(size))
    condition = {"generate": 0, "inpaint": folder.latent_channels, "upscale": 3}[folder.kind]
    manifest = Manifest(
        task=KINDS[folder.kind][0], conditioning="text", image_size=size * folder.vae_factor,
        channels=int(folder.vae_config.get("in_channels", 3)), condition_channels=condition,
        mask_channel=folder.kind == "inpaint", scale_factor=folder.vae_factor if folder.kind == "upscale" else 1,
        latent=True, default_sampler=default_sampler(),
        prediction_type=str(folder.scheduler_config.get("prediction_type", "epsilon")),
        description=f"{folder.pipeline} folder {folder.root.name}")
    manifest.check(str(folder.root / "scheduler" / "scheduler_config.json"))
    return manifest
