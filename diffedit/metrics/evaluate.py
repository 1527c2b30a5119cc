"""FID, KID (and IS when logits exist) between a reference and image folders or sampled checkpoints.

This is the one place the CLI and the GUI panel call: references may be folders (statistics cached)
or .npz files (ours or pytorch-fid's; KID needs our files, which keep the features).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffedit.metrics.features import FeatureExtractor, Progress, list_images
from diffedit.metrics.fid import frechet_distance
from diffedit.metrics.inception_score import inception_score
from diffedit.metrics.kid import kernel_inception_distance
from diffedit.metrics.stats import Statistics, StatsCache, load_stats

FID_MIN_IMAGES = 2048  # below the feature dimension the covariance is rank-deficient and FID is biased


class SmallSetWarning(UserWarning):
    pass


def small_set_notes(n_ref: int, n_images: int) -> list[str]:
    """Notes for sets smaller than 2048 images (FID is biased there; read KID beside it)."""
    return [f"{name} has {n} images (< {FID_MIN_IMAGES}): FID is biased upward, compare KID instead"
            for name, n in (("reference", n_ref), ("image set", n_images)) if 0 < n < FID_MIN_IMAGES]


def compare(ref: Statistics, other: Statistics) -> dict[str, Any]:
    """The result object: fid, kid, kid_std, n_ref, n_images (+ inception_score when logits exist, notes)."""
    result: dict[str, Any] = {"fid": frechet_distance(other.mu, other.sigma, ref.mu, ref.sigma),
                              "kid": None, "kid_std": None, "n_ref": ref.n, "n_images": other.n}
    if ref.features is not None and other.features is not None:
        result["kid"], result["kid_std"] = kernel_inception_distance(other.features, ref.features)
    if other.logits is not None:
        result["inception_score"], result["inception_score_std"] = inception_score(other.logits)
    notes = small_set_notes(ref.n, other.n)
    for note in notes:
        warnings.warn(note, SmallSetWarning, stacklevel=2)
    result["notes"] = notes
    return result


def reference_stats(ref: str | os.PathLike[str], extractor: FeatureExtractor, cache: StatsCache,
                    progress: Progress | None = None) -> Statistics:
    path = Path(ref)
    if path.is_file():
        return load_stats(path)
    return cache.folder_stats(path, extractor, progress)


def compare_folders(ref: str | os.PathLike[str], images: str | os.PathLike[str], extractor: FeatureExtractor,
                    cache: StatsCache | None = None, progress: Callable[[str], Progress | None] | None = None
                    ) -> dict[str, Any]:
    """Two image sets (the reference may be an .npz); the generated folder's features are not cached."""
    cache = cache or StatsCache()
    bar = progress or (lambda desc: None)
    ref_stats = reference_stats(ref, extractor, cache, bar("reference"))
    files = list_images(images)
    feats = extractor.extract_files(files, bar("images"))
    return compare(ref_stats, Statistics.from_features(feats.pool, feats.logits))


@dataclass
class SampleSettings:
    samples: int
    sampler: str = ""
    steps: int = 25
    seed: int = 0


def sample_checkpoint(folder: str, settings: SampleSettings, registry: Any, device: str = "cpu",
                      progress: Progress | None = None, cancel: Any = None) -> list[np.ndarray]:
    """`samples` RGB images from a generate checkpoint, seeds seed, seed+1, ... (reproducible).

    `cancel` (a CancelToken) stops sampling within one sampler step by raising `Cancelled`.
    """
    from diffedit.tasks.base import RunContext, TaskRequest
    from diffedit.tasks.params import make_params
    from diffedit.tasks.runner import run_task

    spec = registry.tasks["generate"]
    images = []
    for i in range(settings.samples):
        values: dict[str, Any] = {"steps": settings.steps, "seed": settings.seed + i}
        if settings.sampler:
            values["sampler"] = settings.sampler
        request = TaskRequest(task="generate", params=make_params(spec.params, values), model=folder, device=device)
        result = run_task(request, registry, RunContext(cancel=cancel) if cancel is not None else None)
        if result.image is None:
            raise RuntimeError(f"{folder}: the generate task returned no image")
        images.append(result.image[..., :3])
        if progress:
            progress(i + 1, settings.samples)
    return images


def checkpoint_step(folder: str) -> int | None:
    """The training step recorded in the checkpoint's manifest (made.steps), if any."""
    from diffedit.diffusion.checkpoints import read_manifest

    try:
        return read_manifest(folder).made.steps
    except Exception:  # a folder without a readable manifest still gets a score
        return None


def compare_checkpoints(ref: str | os.PathLike[str], checkpoints: Sequence[str], settings: SampleSettings,
                        extractor: FeatureExtractor, registry: Any, cache: StatsCache | None = None,
                        device: str = "cpu", progress: Callable[[str], Progress | None] | None = None,
                        cancel: Any = None) -> list[dict[str, Any]]:
    """One result per checkpoint (plus checkpoint and step), all against the same reference statistics."""
    cache = cache or StatsCache()
    bar = progress or (lambda desc: None)
    ref_stats = reference_stats(ref, extractor, cache, bar("reference"))
    results = []
    for folder in checkpoints:
        name = Path(folder).name
        images = sample_checkpoint(folder, settings, registry, device, bar(f"sampling {name}"), cancel)
        feats = extractor.extract(images, len(images), bar(f"features {name}"))
        result = {"checkpoint": str(folder), "step": checkpoint_step(folder)}
        result.update(compare(ref_stats, Statistics.from_features(feats.pool, feats.logits)))
        results.append(result)
    return results
