"""Sampling pieces shared by the image tasks: sizes that fit the model, latents, conditioned
sampling in tiles (super-resolution, restoration, segmentation, paired img2img) and mask blending.
"""

from __future__ import annotations

import numpy as np
import torch

from diffedit.diffusion.engine import (
    Run,
    conditioned_model,
    decode_latents,
    encode_latents,
    image_to_tensor,
    latent_factor,
    multiple_of,
    sample,
    tensor_to_rgb,
)
from diffedit.diffusion.tiling import crop_back, pad_to_multiple, run_tiled, tile_count


def to_model_space(run: Run, x: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] to what the UNet denoises (latents for latent models)."""
    return encode_latents(run, x) if run.model.vae is not None else x


def from_model_space(run: Run, z: torch.Tensor) -> torch.Tensor:
    return decode_latents(run, z) if run.model.vae is not None else z


def generated_channels(run: Run) -> int:
    return int(run.model.unet.config.out_channels)


def condition_from_image(run: Run, rgba: np.ndarray) -> torch.Tensor:
    """The concatenated condition for an image: its pixels (or latents) with the model's channels."""
    if run.model.encode_condition is not None:
        return encode_condition(run, image_to_tensor(rgba, 3, run.device, run.dtype))
    m = run.manifest
    image_channels = m.condition_channels if not m.latent else 3
    x = image_to_tensor(rgba, image_channels if image_channels in (1, 3) else 3, run.device, run.dtype)
    return to_model_space(run, x)


def encode_condition(run: Run, x: torch.Tensor) -> torch.Tensor:
    """RGB pixels in [-1, 1] -> the channels concatenated to the UNet input: the image in model space,
    unless the model encodes its condition itself (LoadedModel.encode_condition, seeded by the run)."""
    if run.model.encode_condition is not None:
        return run.model.encode_condition(x, run.generator)
    cond = to_model_space(run, _cond_channels(run, x))
    if run.manifest.mask_channel:  # a repair model that also inpaints: an empty mask means "no hole"
        cond = torch.cat([cond, torch.zeros_like(cond[:, :1])], dim=1)
    return cond


# The eight flips and quarter turns of the plane: (quarter turns, mirrored first).
DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def _oriented(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    return torch.rot90(x.flip(3) if flip else x, turns, (2, 3))


def _unoriented(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, -turns, (2, 3))
    return x.flip(3) if flip else x


# Pixels of tiles sampled in one UNet call on a GPU (16 tiles of 128 px; one of 512 px or more)
TILE_BATCH_PIXELS = 16 * 128 * 128
TILE_BATCH_MAX = 16


def tile_batch(run: Run, tile: int) -> int:
    """How many tiles to sample together. One on the CPU: there a batch saves little and the results
    stay those of sampling tile by tile. On a GPU, small tiles one by one leave it waiting on kernel
    launches (measured on an H100: a 2048 px restore was 361 tiles of 128 px at 13 ms each)."""
    if run.device.type == "cpu":
        return 1
    return max(1, min(TILE_BATCH_MAX, TILE_BATCH_PIXELS // (tile * tile)))


def sample_conditioned(run: Run, cond_rgba: np.ndarray, *, class_index: int | None = None, strength: float = 1.0,
                       guidance_scale: float = 1.0, tile: int = 0, overlap: int = 16, prompt: str = "",
                       negative_prompt: str = "", ensemble: bool = False) -> np.ndarray:
    """Sample an image of cond_rgba's size conditioned on it, tile by tile; (h, w, 3) uint8.

    With `strength` < 1 each tile starts from its condition noised part-way (SDEdit from the
    degraded image), which keeps the fidelity of the input and lets more steps add detail.
    `ensemble` runs the input in its eight flips and quarter turns and averages the results turned
    back (the "self-ensemble" of EDSR+/DnCNN+): 8x the time for a more faithful result, since the
    model's errors differ between orientations while the image does not.
    """
    cond_full = image_to_tensor(cond_rgba, 3, run.device, run.dtype)
    multiple = multiple_of(run.model)
    f = latent_factor(run.model)
    tile = tile or max(run.manifest.image_size * 2, 64)
    tile = max(multiple, tile - tile % multiple)
    overlap = min(overlap, tile // 2)
    orientations = DIHEDRAL if ensemble else DIHEDRAL[:1]

    h, w = cond_rgba.shape[:2]
    n_tiles = sum(tile_count(*((w, h) if k % 2 else (h, w)), tile, overlap) for k, _ in orientations)
    done = [0]
    steps_per_tile = max(1, int(run.steps * strength) if strength < 1 else run.steps)

    def tiles(cond_tiles: torch.Tensor) -> torch.Tensor:
        padded, box = pad_to_multiple(cond_tiles, multiple)
        cond_model = encode_condition(run, padded)
        model_fn = conditioned_model(run, concat=cond_model, class_index=class_index, guidance_scale=guidance_scale,
                                     prompt=prompt, negative_prompt=negative_prompt)
        n = padded.shape[0]
        shape = (n, generated_channels(run), padded.shape[2] // f, padded.shape[3] // f)
        # start from the degraded image itself when the model generates the same kind of image
        init = to_model_space(run, padded) if strength < 1 and run.manifest.channels == 3 else None
        # each tile's start noise drawn as sampling it alone would: a batch changes only the speed
        # (deterministic samplers; ancestral ones draw their later noise for the whole batch)
        noise = torch.cat([torch.randn((1, *shape[1:]), generator=run.generator, device=run.generator.device,
                                       dtype=run.dtype) for _ in range(n)]) if n > 1 else None
        out = sample(run, model_fn, shape, init=init, strength=strength if init is not None else 1.0, noise=noise,
                     step_offset=done[0] * steps_per_tile, step_total=n_tiles * steps_per_tile, step_weight=n)
        done[0] += n
        return crop_back(from_model_space(run, out), box)

    batch = tile_batch(run, tile)
    total: torch.Tensor | None = None
    for turns, flip in orientations:
        x = _oriented(cond_full, turns, flip)
        out = run_tiled(tiles, x, tile, overlap if tile_count(x.shape[2], x.shape[3], tile, overlap) > 1 else 0,
                        batch=batch)
        out = _unoriented(out, turns, flip).float()
        total = out if total is None else total + out
    assert total is not None
    return tensor_to_rgb(total / len(orientations))


def _cond_channels(run: Run, x: torch.Tensor) -> torch.Tensor:
    """The RGB condition reduced to the channels the model was trained with (pixel models)."""
    want = run.manifest.condition_channels if not run.manifest.latent else 3
    if want == 1 and x.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(1, keepdim=True)
    return x


def feathered_weight(mask: np.ndarray, feather: float) -> np.ndarray:
    """Blend weight 0..1: zero wherever the mask is zero (those pixels stay exactly), soft inside its edge."""
    from scipy import ndimage

    m = mask.astype(np.float32) / 255
    if feather <= 0:
        return m
    inside = ndimage.distance_transform_edt(mask >= 128)
    ramp = np.clip(inside / feather, 0, 1).astype(np.float32)
    return np.minimum(m, ramp)


def mask_box(mask: np.ndarray, margin: int, multiple: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the mask's bounding box grown by `margin`, clipped to the image."""
    ys, xs = np.nonzero(mask >= 128)
    h, w = mask.shape
    x0, x1 = max(0, int(xs.min()) - margin), min(w, int(xs.max()) + 1 + margin)
    y0, y1 = max(0, int(ys.min()) - margin), min(h, int(ys.max()) + 1 + margin)
    return x0, y0, x1, y1
