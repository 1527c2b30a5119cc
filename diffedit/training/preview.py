"""A sample grid at each checkpoint, drawn with the engine's own denoise loop and samplers, so what
the grid shows is what the tasks will produce (up to guidance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffedit.diffusion.loop import clamped_model, denoise
from diffedit.diffusion.models import Manifest
from diffedit.diffusion.samplers import get_sampler, make_scheduler
from diffedit.training.objective import Batch, model_space


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, h, w) in [-1, 1] -> (B, h, w, 3) uint8; NaN shows as black, never crashes the run."""
    x = torch.nan_to_num(x.detach().float().cpu(), nan=-1.0).clamp(-1, 1)
    arr = x.add(1).mul(127.5).round().to(torch.uint8).numpy().transpose(0, 2, 3, 1)
    return np.repeat(arr, 3, axis=3) if arr.shape[3] == 1 else arr[..., :3]


@torch.no_grad()
def sample_batch(unet: Any, vae: Any, text_encoder: Any, manifest: Manifest, scheduler_config: dict[str, Any],
                 batch: Batch, *, steps: int, seed: int, sampler: str, device: torch.device) -> torch.Tensor:
    """Samples (pixels in [-1, 1]) conditioned on `batch` as the tasks condition them (guidance 1)."""
    x0, cond = model_space(batch, vae, device)
    extra: dict[str, Any] = {}
    if manifest.conditioning == "class" and batch.labels is not None:
        extra["class_labels"] = batch.labels.to(device)
    if manifest.conditioning == "text" and batch.captions is not None:
        extra["encoder_hidden_states"] = text_encoder.encode(batch.captions).to(device)

    def model_fn(x_in: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([x_in, cond.to(x_in)], dim=1) if cond is not None else x_in
        out = unet(inp, t, **extra).sample
        if manifest.residual and cond is not None:  # the UNet predicts the correction of its condition
            out = out + cond[:, : out.shape[1]].to(out)
        return out  # type: ignore[no-any-return]

    info = get_sampler(sampler)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    scheduler = make_scheduler(info, scheduler_config)
    pixel = vae is None and scheduler_config.get("clip_sample")  # as engine.sample does
    z = denoise(clamped_model(model_fn, scheduler) if pixel else model_fn, scheduler, info, shape=tuple(x0.shape),
                steps=steps, generator=gen, device=device)
    out = vae.decode(z / vae.config.scaling_factor).sample if vae is not None else z
    if batch.mask is not None:  # as the inpaint task shows it: the known pixels kept
        m = batch.mask.to(out.device)
        out = batch.x.to(out.device) * (1 - m) + out * m
    return out


def grid(rows: list[torch.Tensor]) -> Image.Image:
    """Rows of equally sized image batches, side by side, with a 2 px gap."""
    tiles = [_to_uint8(r) for r in rows]
    n, h, w = tiles[0].shape[:3]
    out = np.full((len(tiles) * (h + 2) - 2, n * (w + 2) - 2, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c in range(n):
            out[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = row[c]
    return Image.fromarray(out)


def write_grid(path: Path, unet: Any, vae: Any, text_encoder: Any, manifest: Manifest,
               scheduler_config: dict[str, Any], batch: Batch, *, steps: int, seed: int, sampler: str,
               device: torch.device) -> Path:
    """Row 1: samples; with a condition also the condition (row 0) and the original (row 2)."""
    samples = sample_batch(unet, vae, text_encoder, manifest, scheduler_config, batch, steps=steps, seed=seed,
                           sampler=sampler, device=device)
    rows = [samples]
    if batch.mask is not None and batch.concat is not None:  # repair: each row's degraded input
        rows = [batch.concat, samples, batch.x]
    elif batch.mask is not None:
        rows = [batch.x * (1 - batch.mask), samples, batch.x]
    elif batch.concat is not None:
        shown = batch.concat if batch.concat.shape[1] in (1, 3) else batch.concat[:, :3]
        rows = [shown, samples, batch.x]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    grid(rows).save(tmp, format="PNG")
    tmp.replace(path)
    return path
