"""Image sets -> 2048-d Inception features (and logits when available), in batches with a progress bar.

Images load as pytorch-fid loads them (PIL, RGB, [0, 1]); each is resized on its own, so a folder may
mix sizes, which gives the same result as pytorch-fid's batched resize of equal-sized images.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffedit.metrics.weights import WeightsSource, file_sha256, resolve_weights

IMAGE_EXTENSIONS = frozenset({".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"})
EXTRACTOR_NAME = "pytorch-fid-inception-v3-pool3"
RESIZE_MODE = "bilinear"

Progress = Callable[[int, int], None]  # (done, total)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (pytorch-fid's extensions)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def tqdm_progress(desc: str, enabled: bool = True) -> tuple[Progress, Callable[[], None]]:
    """A (progress, close) pair drawing a tqdm bar on stderr, or doing nothing when disabled."""
    if not enabled:
        return (lambda done, total: None), (lambda: None)
    from tqdm import tqdm

    bar: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=desc, unit="img", file=sys.stderr))
        bar[0].n = done
        bar[0].refresh()

    return progress, (lambda: bar[0].close() if bar else None)


@dataclass
class Features:
    pool: np.ndarray  # (N, 2048) float64
    logits: np.ndarray | None  # (N, 1008) or None


_MODELS: dict[tuple[str, str, str], Any] = {}


class FeatureExtractor:
    """The FID Inception with its weights, plus what identifies its features for caching."""

    def __init__(self, source: WeightsSource | None = None, device: str = "cpu", batch_size: int = 16) -> None:
        from diffedit.metrics.inception import load_fid_inception

        self.source = source or resolve_weights()
        self.device = device
        self.batch_size = batch_size
        key = (str(self.source.path), self.source.kind, device)
        if key not in _MODELS:  # the CLI and GUI build extractors repeatedly; the network loads once
            _MODELS[key] = load_fid_inception(self.source).to(device)
        self.model = _MODELS[key]

    @property
    def weights_sha256(self) -> str:
        return file_sha256(self.source.path)

    @property
    def has_logits(self) -> bool:
        return self.source.has_logits

    def cache_settings(self) -> dict[str, object]:
        """Every setting that changes the features: part of every statistics cache key."""
        from diffedit.metrics.inception import FEATURE_DIMS, RESOLUTION

        return {"extractor": EXTRACTOR_NAME, "weights_sha256": self.weights_sha256, "resolution": RESOLUTION,
                "resize": RESIZE_MODE, "dims": FEATURE_DIMS}

    def extract(self, images: Iterable[np.ndarray], total: int, progress: Progress | None = None) -> Features:
        """Features of uint8 RGB (H, W, 3) images, `batch_size` at a time."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        from diffedit.metrics.inception import RESOLUTION

        pools: list[np.ndarray] = []
        logits: list[np.ndarray] = []
        batch: list[torch.Tensor] = []
        done = 0

        def flush() -> None:
            nonlocal done
            x = torch.cat(batch).to(self.device)
            with torch.no_grad():
                p, lg = self.model(x)
            pools.append(p.double().cpu().numpy())
            if lg is not None:
                logits.append(lg.double().cpu().numpy())
            done += len(batch)
            batch.clear()
            if progress:
                progress(done, total)

        if progress:
            progress(0, total)
        for im in images:
            t = torch.from_numpy(np.array(im[..., :3])).permute(2, 0, 1)[None].float() / 255
            batch.append(F.interpolate(t, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False))
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        pool = np.concatenate(pools) if pools else np.zeros((0, 2048))
        return Features(pool, np.concatenate(logits) if logits else None)

    def extract_files(self, files: Sequence[Path], progress: Progress | None = None) -> Features:
        return self.extract((load_rgb(p) for p in files), len(files), progress)
