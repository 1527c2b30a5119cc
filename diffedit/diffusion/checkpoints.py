"""Checkpoint folders: diffusers subfolders plus a `diffedit.json` manifest, saved atomically and
verified on load (manifest, parts, channels, SHA-256); legacy pickled state dicts load safely.

Layouts `load_checkpoint` accepts:

1. What `save_checkpoint` writes::

       diffedit.json                    the manifest (`Manifest`, defined in diffedit.diffusion.models)
       unet/config.json + diffusion_pytorch_model.safetensors
       scheduler/scheduler_config.json
       vae/                             latent models (AutoencoderKL)
       text_encoder/ + tokenizer/       text-conditioned models (see diffedit.diffusion.text)

2. A legacy UNet: `unet/` holds config.json and ONE `.ckpt`/`.pt`/`.pth`/`.bin` state dict.
3. A single file: the folder holds diffedit.json, the UNet's diffusers `config.json` and ONE
   `.ckpt`/`.pt`/`.pth`/`.bin`/`.safetensors` state dict, and no `unet/`.

In layouts 2 and 3 `scheduler/` may be left out: a DDPM config is then made from the manifest.
Pickled files are read only with `torch.load(weights_only=True)`, so one that would run code is refused.
The manifest itself is plain JSON: this module imports torch and diffusers only inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffedit.diffusion.models import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    CheckpointError,
    Manifest,
    Provenance,
)
from diffedit.downloads import file_sha256

if TYPE_CHECKING:
    from diffedit.diffusion.models import ModelBundle
    from diffedit.diffusion.text import TextEncoder

__all__ = ["MANIFEST_NAME", "MANIFEST_VERSION", "CheckpointError", "CheckpointParts", "LoadedModel", "Manifest",
           "Provenance", "detect_stable_diffusion", "expected_in_channels", "file_sha256", "inspect_checkpoint",
           "load_checkpoint", "load_legacy_weights", "read_manifest", "save_checkpoint", "verify_hashes"]

LEGACY_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
WEIGHT_SUFFIXES = (".safetensors", *LEGACY_SUFFIXES)
UNET_CLASSES = ("UNet2DModel", "UNet2DConditionModel")
SD_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                "StableDiffusionInpaintPipeline", "StableDiffusionUpscalePipeline")
_STATE_DICT_KEYS = ("state_dict", "model", "unet")  # where training scripts nest the weights


# ---------------------------------------------------------------------------------------- detection
def detect_stable_diffusion(folder: str | os.PathLike[str]) -> str | None:
    """The pipeline class name when `folder` is a diffusers Stable Diffusion folder, else None."""
    index = Path(folder) / "model_index.json"
    try:
        name = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None
    return name if name in SD_PIPELINES else None


# ------------------------------------------------------------------------------------------- hashing


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _combined_sha256(digests: list[str]) -> str:
    """One file: its own digest. Shards: the digest of their sorted digests, one per line."""
    return digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


# ------------------------------------------------------------------------------------- inspection
@dataclass
class CheckpointParts:
    """What a checkpoint folder holds, read from JSON alone (no torch): enough for `models info`."""

    root: Path
    unet_config_path: Path
    unet_config: dict[str, Any]
    unet_weights: list[Path]
    legacy: bool  # weights in a pickled (or single top-level) file rather than unet/*.safetensors
    scheduler_config: dict[str, Any] | None  # None: made from the manifest
    vae_dir: Path | None = None
    vae_config: dict[str, Any] | None = None
    vae_weights: list[Path] = field(default_factory=list)
    text_dir: Path | None = None

    @property
    def unet_class(self) -> str:
        name = self.unet_config.get("_class_name")
        if name is None:  # a hand-written legacy config: cross-attention means a text UNet
            name = "UNet2DConditionModel" if "cross_attention_dim" in self.unet_config else "UNet2DModel"
        return str(name)

    def weight_files(self) -> list[Path]:
        files = [*self.unet_weights, *self.vae_weights]
        if self.text_dir is not None:
            files += [p for p in _weight_files(self.text_dir) if p.parent == self.text_dir]
        return files


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: could not be read ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: must hold a JSON object")
    return data


def read_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """The checked manifest of a checkpoint folder (plain JSON: no torch)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        pipeline = detect_stable_diffusion(folder)
        hint = f" (this is a Stable Diffusion pipeline: {pipeline})" if pipeline else ""
        raise CheckpointError(f"{path}: missing; a DiffEdit checkpoint folder needs it{hint}")
    return Manifest.from_json(_read_json(path), str(path))


def _one_file(folder: Path, suffixes: tuple[str, ...]) -> Path | None:
    found = [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in suffixes]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise CheckpointError(f"{folder}: holds several weight files ({names}); keep exactly one")
    return found[0] if found else None


def _find_unet(root: Path) -> tuple[Path, list[Path], bool]:
    """(config path, weight files, legacy) for layouts 1-3 of the module docstring."""
    unet_dir = root / "unet"
    if unet_dir.is_dir():
        config = unet_dir / "config.json"
        shards = sorted(unet_dir.glob("*.safetensors"))
        if shards:
            return config, shards, False
        legacy = _one_file(unet_dir, LEGACY_SUFFIXES)
        if legacy is None:
            raise CheckpointError(f"{unet_dir}: no weights (expected diffusion_pytorch_model.safetensors)")
        return config, [legacy], True
    single = _one_file(root, WEIGHT_SUFFIXES)
    if single is None or not (root / "config.json").is_file():
        raise CheckpointError(f"{unet_dir}: missing (a checkpoint needs unet/config.json and its weights, "
                              "or config.json plus one weights file beside diffedit.json)")
    return root / "config.json", [single], True


def expected_in_channels(manifest: Manifest, latent_channels: int | None = None) -> int:
    """UNet input channels: generated channels (latents for latent models) + condition + mask."""
    base = latent_channels if manifest.latent and latent_channels is not None else manifest.channels
    return base + manifest.condition_channels + int(manifest.mask_channel)


def inspect_checkpoint(folder: str | os.PathLike[str]) -> tuple[Manifest, CheckpointParts]:
    """Read and cross-check a checkpoint folder's manifest and configs without loading any weights."""
    root = Path(folder)
    if not root.exists():
        raise CheckpointError(f"{root}: no such folder")
    if not root.is_dir():
        hint = " (put it in a folder with diffedit.json and config.json)" if root.suffix in WEIGHT_SUFFIXES else ""
        raise CheckpointError(f"{root}: not a checkpoint folder{hint}")
    pipeline = detect_stable_diffusion(root)
    if pipeline is not None:
        raise CheckpointError(f"{root / 'model_index.json'}: a Stable Diffusion pipeline ({pipeline}), "
                              "not a DiffEdit checkpoint; it needs the Stable Diffusion loader")
    manifest = read_manifest(root)
    config_path, weights, legacy = _find_unet(root)
    unet_config = _read_json(config_path)
    scheduler_path = root / "scheduler" / "scheduler_config.json"
    if scheduler_path.is_file() or not legacy:
        scheduler: dict[str, Any] | None = _read_json(scheduler_path)
    else:
        scheduler = None
    parts = CheckpointParts(root, config_path, unet_config, weights, legacy, scheduler)
    if manifest.latent:
        parts.vae_dir = root / "vae"
        parts.vae_config = _read_json(parts.vae_dir / "config.json")
        parts.vae_weights = sorted(parts.vae_dir.glob("*.safetensors"))
        if not parts.vae_weights:
            raise CheckpointError(f"{parts.vae_dir}: no weights (expected diffusion_pytorch_model.safetensors)")
    if manifest.conditioning == "text":
        parts.text_dir = root / "text_encoder"
        for sub in ("text_encoder", "tokenizer"):
            if not (root / sub).is_dir():
                raise CheckpointError(f"{root / sub}: missing (diffedit.json says the model is text-conditioned)")
    _check_configs(manifest, parts)
    return manifest, parts


def _check_configs(manifest: Manifest, parts: CheckpointParts) -> None:
    """The UNet (and VAE) configs must agree with the manifest, so a wrong model never half-runs."""
    config, where = parts.unet_config, parts.unet_config_path
    if parts.unet_class not in UNET_CLASSES:
        raise CheckpointError(f"{where}: _class_name {parts.unet_class!r} is not one of {', '.join(UNET_CLASSES)}")
    latent_channels = None
    if manifest.latent:
        vae = parts.vae_config or {}
        vae_where = parts.vae_dir / "config.json" if parts.vae_dir else where
        latent_channels = int(vae.get("latent_channels", 4))
        if int(vae.get("in_channels", 3)) != manifest.channels:
            raise CheckpointError(f"{vae_where}: in_channels is {vae.get('in_channels', 3)} but diffedit.json "
                                  f"says channels {manifest.channels}")
    want_in = expected_in_channels(manifest, latent_channels)
    got_in = int(config.get("in_channels", 4 if parts.unet_class == "UNet2DConditionModel" else 3))
    if got_in != want_in:
        base = f"latent channels {latent_channels}" if manifest.latent else f"channels {manifest.channels}"
        raise CheckpointError(
            f"{where}: in_channels is {got_in} but diffedit.json says {base} + condition_channels "
            f"{manifest.condition_channels} + mask {int(manifest.mask_channel)} = {want_in}")
    want_out = latent_channels if latent_channels is not None else manifest.channels
    got_out = int(config.get("out_channels", got_in))
    if got_out != want_out:
        raise CheckpointError(f"{where}: out_channels is {got_out} but the model must predict {want_out} channels")
    classes = config.get("num_class_embeds")
    if manifest.conditioning == "class" and classes != len(manifest.class_names) + 1:
        raise CheckpointError(f"{where}: num_class_embeds is {classes} but diffedit.json names "
                              f"{len(manifest.class_names)} classes (+1 null class for guidance)")
    if manifest.conditioning == "text" and parts.unet_class != "UNet2DConditionModel":
        raise CheckpointError(f"{where}: a text-conditioned model needs a UNet2DConditionModel, "
                              f"not {parts.unet_class}")


def verify_hashes(manifest: Manifest, parts: CheckpointParts) -> dict[str, str]:
    """Check every listed file against its SHA-256; returns the digests of the files that will load."""
    root, listed = parts.root, manifest.made.weights_sha256
    digests: dict[str, str] = {}
    for rel, expected in listed.items():
        path = root / rel
        if not path.is_file():
            raise CheckpointError(f"{path}: listed in {MANIFEST_NAME} but missing")
        found = file_sha256(path)
        if found != expected.lower():
            raise CheckpointError(f"{path}: SHA-256 does not match {MANIFEST_NAME} (expected {expected[:16]}…, "
                                  f"found {found[:16]}…): the file was changed or is corrupt")
        digests[rel] = found
    for path in parts.weight_files():
        rel = path.relative_to(root).as_posix()
        if rel not in digests:
            if listed:
                raise CheckpointError(f"{path}: not listed in {MANIFEST_NAME}'s made.weights_sha256")
            digests[rel] = file_sha256(path)  # a hand-written manifest: nothing to check against
    return digests


# -------------------------------------------------------------------------------------- loading
def load_legacy_weights(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A state dict from a `.ckpt`/`.pt`/`.pth`/`.bin` file, never running code the file contains.

    Only `torch.load(path, map_location="cpu", weights_only=True)` is used: its unpickler accepts
    tensors and plain containers and refuses any other global before anything is called.
    """
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        detail = found.group(1).strip() if found else _first_line(exc)
        name = re.search(r"GLOBAL (\S+)", detail)
        if name:
            raise CheckpointError(
                f"{path}: refused: the file contains Python objects that would run code when loaded (it names "
                f"{name.group(1)}); only plain tensor state dicts are accepted: convert it to safetensors with a "
                "tool you trust") from None
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({detail[:120]})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({_first_line(exc)})") from None
    for key in _STATE_DICT_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()) or not obj:
        raise CheckpointError(f"{path}: does not hold a state dict of tensors")
    out = {}
    for key, value in obj.items():
        for prefix in ("module.", "_orig_mod."):  # DDP and torch.compile wrappers
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _load_module(cls_name: str, config: dict[str, Any], weights: list[Path], where: Path) -> Any:
    """Build a diffusers module from its config and load its weights strictly."""
    import diffusers
    import safetensors.torch

    try:
        module = getattr(diffusers, cls_name).from_config(config)
    except Exception as exc:  # diffusers raises ValueError, TypeError, KeyError... for a bad config
        raise CheckpointError(f"{where}: not a usable {cls_name} config ({_first_line(exc)})") from None
    state: dict[str, Any] = {}
    for path in weights:
        if path.suffix == ".safetensors":
            try:
                state.update(safetensors.torch.load_file(str(path)))
            except Exception as exc:  # safetensors raises its own error types
                raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
        else:
            state.update(load_legacy_weights(path))
    missing, unexpected = _key_differences(module.state_dict(), state)
    if missing or unexpected:
        raise CheckpointError(f"{weights[0]}: weights do not fit {where} ({len(missing)} missing, e.g. "
                              f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes differ from the config
        reason = str(exc).splitlines()[-1].strip()
        raise CheckpointError(f"{weights[0]}: weights do not fit {where} ({reason})") from None
    return module.eval()


def _key_differences(own: dict[str, Any], given: dict[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(set(own) - set(given)), sorted(set(given) - set(own))


@dataclass
class LoadedModel:
    """A verified checkpoint, ready to sample: modules on `device` in `dtype`, eval mode."""

    manifest: Manifest
    unet: Any
    scheduler_config: dict[str, Any]
    path: Path
    unet_sha256: str  # for the generation record's model hash
    vae: Any = None
    text_encoder: TextEncoder | None = None  # wraps the model and its tokenizer
    weights_sha256: dict[str, str] = field(default_factory=dict)
    # For a model whose concatenated condition is not simply the image in model space (the SD x4
    # upscaler takes the low-res pixels, noised): (pixels in [-1, 1] at output size, generator) -> channels.
    encode_condition: Callable[[Any, Any], Any] | None = None

    @property
    def tokenizer(self) -> Any:
        return getattr(self.text_encoder, "tokenizer", None)


def load_checkpoint(folder: str | os.PathLike[str], device: Any = "cpu", dtype: Any = None,
                    *, verify: bool = True) -> LoadedModel:
    """Load a checkpoint folder (layouts in the module docstring) after checking it.

    Raises CheckpointError naming the file for: a Stable Diffusion pipeline folder, a missing or
    unreadable manifest, an unknown manifest_version, missing parts, channel counts that disagree with
    the UNet config, SHA-256 mismatches (when `verify`), and weights that do not fit their config.
    """
    from diffedit.diffusion.models import plain_config
    from diffedit.diffusion.models import scheduler_config as default_scheduler_config

    manifest, parts = inspect_checkpoint(folder)
    if verify:
        digests = verify_hashes(manifest, parts)
    else:
        digests = {p.relative_to(parts.root).as_posix(): file_sha256(p) for p in parts.unet_weights}
    unet_digests = [digests[p.relative_to(parts.root).as_posix()] for p in parts.unet_weights]
    unet = _load_module(parts.unet_class, parts.unet_config, parts.unet_weights, parts.unet_config_path)
    vae = text = None
    if parts.vae_dir is not None and parts.vae_config is not None:
        vae = _load_module("AutoencoderKL", parts.vae_config, parts.vae_weights, parts.vae_dir / "config.json")
    if parts.text_dir is not None:
        from diffedit.diffusion.text import TextEncoderError, load_text_encoder

        try:
            text = load_text_encoder(parts.root, device, dtype)
        except TextEncoderError as exc:
            raise CheckpointError(str(exc)) from None
        width = parts.unet_config.get("cross_attention_dim")
        if width != text.width:
            raise CheckpointError(f"{parts.unet_config_path}: cross_attention_dim is {width} but the text "
                                  f"encoder in {parts.text_dir} is {text.width} wide")
    for module in (unet, vae):
        if module is not None:
            _move(module, device, dtype)
    scheduler = parts.scheduler_config
    if scheduler is None:
        scheduler = default_scheduler_config(manifest.prediction_type, latent=manifest.latent)
    return LoadedModel(manifest, unet, plain_config(scheduler), parts.root, _combined_sha256(unet_digests),
                       vae, text, digests)


def _move(module: Any, device: Any, dtype: Any) -> None:
    """diffusers' `to()` warns on every dtype cast, even for models (like ours) with no layer that
    must stay in fp32; torch's own `to()` does the same cast quietly."""
    import torch

    if dtype is None:
        module.to(device)
    else:
        torch.nn.Module.to(module, device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------- saving
def _temp_sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{secrets.token_hex(6)}.{kind}"


def _check_target(target: Path, overwrite: bool) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise CheckpointError(f"{target}: exists and is not a folder")
    if not any(target.iterdir()):
        return  # an empty folder is replaced
    if not overwrite:
        raise CheckpointError(f"{target}: already exists; choose another folder or allow overwriting (--force)")
    if not (target / MANIFEST_NAME).is_file():
        raise CheckpointError(f"{target}: refusing to replace a folder that is not a DiffEdit checkpoint")


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder entry to disk before the rename makes them visible."""
    for path in [*folder.rglob("*"), folder]:
        if path.is_dir():
            _fsync_dir(path)
        else:
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; rename is as durable as it gets there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _move_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(tmp, target)
    else:  # an empty folder or an old checkpoint we may replace: swap, then delete the old one
        old = _temp_sibling(target, "old")
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)


def _versions() -> dict[str, str]:
    import diffusers
    import torch

    from diffedit import __version__

    return {"diffedit": __version__, "torch": str(torch.__version__), "diffusers": str(diffusers.__version__)}


def save_checkpoint(folder: str | os.PathLike[str], bundle: ModelBundle, *, overwrite: bool = False) -> Manifest:
    """Write `bundle` as a checkpoint folder; returns the manifest written (with versions and hashes).

    Everything is written into a hidden temporary sibling folder, checked as `load_checkpoint` would,
    and renamed onto `folder` only when complete: a failure leaves no partial folder behind. An existing
    non-empty `folder` is replaced only with `overwrite` and only if it is a DiffEdit checkpoint.
    """
    import diffusers

    target = Path(folder)
    bundle.manifest.check(MANIFEST_NAME)
    _check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target, "partial")
    try:
        tmp.mkdir()
        bundle.unet.save_pretrained(tmp / "unet", safe_serialization=True)
        config = dict(bundle.scheduler_config)
        scheduler_cls = getattr(diffusers, str(config.get("_class_name", "DDPMScheduler")))
        scheduler_cls.from_config(config).save_pretrained(tmp / "scheduler")
        if bundle.vae is not None:
            bundle.vae.save_pretrained(tmp / "vae", safe_serialization=True)
        if bundle.text_encoder is not None:
            bundle.text_encoder.save(tmp)
        hashes = {p.relative_to(tmp).as_posix(): file_sha256(p) for p in _weight_files(tmp)}
        made = replace(bundle.manifest.made, versions=_versions(), weights_sha256=hashes)
        manifest = replace(bundle.manifest, made=made)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
        inspect_checkpoint(tmp)  # never publish a folder that would not load
        _fsync_tree(tmp)
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
