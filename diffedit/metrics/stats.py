"""Feature statistics (mu, sigma) in pytorch-fid-compatible .npz files, and a cache keyed by settings.

A cached file's name is a hash of every setting that changes it (extractor, weights hash, resolution,
resize mode) plus the folder's file list with sizes and modification times, so a stale hit is
impossible short of a file rewritten with the same size and time. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffedit.document.atomic import atomic_write

if TYPE_CHECKING:
    from diffedit.metrics.features import FeatureExtractor, Progress


@dataclass
class Statistics:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    features: np.ndarray | None = None  # kept for KID; pytorch-fid's own files have none
    logits: np.ndarray | None = None

    @classmethod
    def from_features(cls, feats: np.ndarray, logits: np.ndarray | None = None) -> Statistics:
        """As pytorch-fid: mean and unbiased covariance over images (rows), in float64."""
        feats = np.asarray(feats, np.float64)
        if len(feats) < 2:
            raise ValueError("statistics need at least 2 images")
        return cls(np.mean(feats, axis=0), np.cov(feats, rowvar=False), len(feats), feats, logits)


def save_stats(path: str | os.PathLike[str], stats: Statistics, settings: dict[str, object] | None = None) -> Path:
    """Write mu and sigma (what pytorch-fid reads) plus n, features and settings, atomically."""
    arrays: dict[str, np.ndarray] = {"mu": stats.mu, "sigma": stats.sigma, "n": np.array(stats.n)}
    if stats.features is not None:
        arrays["features"] = stats.features.astype(np.float32)
    if stats.logits is not None:
        arrays["logits"] = stats.logits.astype(np.float32)
    if settings is not None:
        arrays["settings"] = np.array(json.dumps(settings, sort_keys=True))

    def write(f: io.BufferedWriter) -> None:  # type: ignore[type-arg]
        np.savez(f, **arrays)

    return atomic_write(path, write)  # type: ignore[arg-type]


def load_stats(path: str | os.PathLike[str]) -> Statistics:
    """Read our files or pytorch-fid's (mu and sigma only: then n is unknown (0) and KID unavailable)."""
    with np.load(path, allow_pickle=False) as f:
        if "mu" not in f or "sigma" not in f:
            raise ValueError(f"{path}: not a statistics file (no mu/sigma)")
        feats = f["features"].astype(np.float64) if "features" in f else None
        logits = f["logits"].astype(np.float64) if "logits" in f else None
        n = int(f["n"]) if "n" in f else (len(feats) if feats is not None else 0)
        return Statistics(f["mu"][:], f["sigma"][:], n, feats, logits)


def folder_fingerprint(files: list[Path]) -> list[tuple[str, int, int]]:
    out = []
    for p in files:
        st = p.stat()
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return out


def cache_key(settings: dict[str, object], folder: Path, files: list[Path]) -> str:
    blob = json.dumps({"settings": settings, "folder": str(folder.resolve()), "files": folder_fingerprint(files)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class StatsCache:
    """`<root>/<folder name>-<key>.npz` files; `hits` and `misses` count lookups (for tests and logs)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        from diffedit.metrics.weights import cache_dir

        self.root = Path(root) if root is not None else cache_dir() / "fid-stats"
        self.hits = 0
        self.misses = 0

    def path_for(self, folder: Path, files: list[Path], settings: dict[str, object]) -> Path:
        return self.root / f"{folder.resolve().name or 'root'}-{cache_key(settings, folder, files)}.npz"

    def folder_stats(self, folder: str | os.PathLike[str], extractor: FeatureExtractor,
                     progress: Progress | None = None) -> Statistics:
        """Statistics of the images in `folder`, from the cache when every setting and file matches."""
        from diffedit.metrics.features import list_images

        root = Path(folder)
        files = list_images(root)
        if len(files) < 2:
            raise ValueError(f"{root}: need at least 2 images, found {len(files)}")
        settings = extractor.cache_settings()
        path = self.path_for(root, files, settings)
        if path.is_file():
            try:
                stats = load_stats(path)
                self.hits += 1
                return stats
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed and replaced
        self.misses += 1
        feats = extractor.extract_files(files, progress)
        stats = Statistics.from_features(feats.pool, feats.logits)
        save_stats(path, stats, settings)
        return stats
