"""Load a Stable Diffusion pipeline folder into a `LoadedModel` (the loader's `load`).

The folder's unet, vae, text_encoder, tokenizer and scheduler config are loaded as components, never
as a pipeline: DiffEdit's loop samples with them. Weights load only from local files; pickled `.bin`
files go through the libraries' `weights_only` loading, which refuses code.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from diffedit.diffusion.checkpoints import CheckpointError, LoadedModel, file_sha256
from diffedit.diffusion.models import plain_config
from diffedit.diffusion.text import CLIPTextEncoder, quiet_transformers
from diffedit_builtin_stablediffusion.adapter import LowResCondition, StableDiffusionUNet, inpaint_order
from diffedit_builtin_stablediffusion.layout import StableDiffusionFolder, manifest_for, read_folder

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model"
TRANSFORMERS_WEIGHTS = ("model", "pytorch_model")


def weight_files(folder: Path, stems: tuple[str, ...]) -> tuple[list[Path], str | None]:
    """(files, variant) the libraries will load: safetensors before .bin, the plain files before an
    fp16 variant, one file or its shards. CheckpointError when there are none."""
    for variant in (None, "fp16"):
        for suffix in (".safetensors", ".bin"):
            for stem in stems:
                found = [p for p in sorted(folder.glob(f"{stem}*{suffix}")) if (".fp16" in p.name) == bool(variant)]
                single = folder / f"{stem}{'.' + variant if variant else ''}{suffix}"
                if single in found:
                    return [single], variant
                shards = [p for p in found if "-of-" in p.name]
                if shards:
                    return shards, variant
    raise CheckpointError(f"{folder}: no weights (expected {stems[0]}.safetensors)")


def _unet_sha256(files: list[Path], root: Path) -> tuple[str, dict[str, str]]:
    """The model hash for generation records (as DiffEdit checkpoints compute it) and each file's digest."""
    digests = {p.relative_to(root).as_posix(): file_sha256(p) for p in files}
    values = sorted(digests.values())
    combined = values[0] if len(values) == 1 else hashlib.sha256("\n".join(values).encode()).hexdigest()
    return combined, digests


def _diffusers_part(cls_name: str, root: Path, part: str) -> tuple[Any, list[Path]]:
    import diffusers
    from diffusers.utils import is_accelerate_available

    files, variant = weight_files(root / part, (DIFFUSERS_WEIGHTS,))
    try:  # without accelerate, diffusers warns at length unless told not to try low-memory loading
        module = getattr(diffusers, cls_name).from_pretrained(
            str(root), subfolder=part, local_files_only=True, variant=variant,
            use_safetensors=files[0].suffix == ".safetensors", low_cpu_mem_usage=is_accelerate_available())
    except Exception as exc:  # diffusers raises OSError, ValueError, EnvironmentError... for a broken part
        raise CheckpointError(f"{root / part}: not a loadable {cls_name} ({_first_line(exc)})") from None
    return module.eval(), files


def _text_encoder(root: Path) -> CLIPTextEncoder:
    from transformers import CLIPTextModel, CLIPTokenizer

    files, variant = weight_files(root / "text_encoder", TRANSFORMERS_WEIGHTS)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
    except Exception as exc:  # transformers raises many kinds for a broken folder
        raise CheckpointError(f"{root / 'tokenizer'}: not a readable CLIP tokenizer ({_first_line(exc)})") from None
    try:
        with quiet_transformers():
            model = CLIPTextModel.from_pretrained(str(root / "text_encoder"), local_files_only=True, variant=variant,
                                                  use_safetensors=files[0].suffix == ".safetensors")
    except Exception as exc:
        raise CheckpointError(f"{root / 'text_encoder'}: not a loadable CLIP text model ({_first_line(exc)})") from None
    return CLIPTextEncoder(model, tokenizer)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _adapt(folder: StableDiffusionFolder, unet: Any) -> tuple[Any, LowResCondition | None]:
    """The UNet as the tasks call it, and the upscaler's condition encoder (see adapter.py)."""
    if folder.kind == "inpaint":
        return StableDiffusionUNet(unet, order=inpaint_order(folder.latent_channels)), None
    if folder.kind == "upscale":
        assert folder.low_res_scheduler_config is not None
        condition = LowResCondition(folder.low_res_scheduler_config, folder.noise_level, folder.vae_factor)
        return StableDiffusionUNet(unet, class_label=folder.noise_level), condition
    return unet, None


def _move(module: Any, device: Any, dtype: Any) -> None:
    """torch's own `to()`: diffusers' warns on every dtype cast."""
    import torch

    torch.nn.Module.to(module, device=device, dtype=dtype) if dtype is not None else module.to(device)


def load_stable_diffusion(path: str | os.PathLike[str], device: Any = "cpu", dtype: Any = None) -> LoadedModel:
    """The loader's `load`: a Stable Diffusion folder as a text-conditioned latent model."""
    folder = read_folder(path)
    manifest = manifest_for(folder)
    root = folder.root
    unet, unet_files = _diffusers_part("UNet2DConditionModel", root, "unet")
    vae, _ = _diffusers_part("AutoencoderKL", root, "vae")
    text = _text_encoder(root)
    width = unet.config.cross_attention_dim
    if width != text.width:
        raise CheckpointError(f"{root / 'unet' / 'config.json'}: cross_attention_dim is {width} but the text "
                              f"encoder in {root / 'text_encoder'} is {text.width} wide")
    for module in (unet, vae):
        _move(module, device, dtype)
    text.to(device, dtype)
    model, condition = _adapt(folder, unet)
    unet_hash, digests = _unet_sha256(unet_files, root)
    return LoadedModel(manifest, model, plain_config(folder.scheduler_config), root, unet_hash, vae=vae,
                       text_encoder=text, weights_sha256=digests, encode_condition=condition)
