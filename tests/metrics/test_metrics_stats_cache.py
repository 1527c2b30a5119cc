"""Statistics: pytorch-fid's values, .npz compatibility, cache hits and misses, identical sets -> FID ~0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffedit.metrics.stats import Statistics, StatsCache, load_stats, save_stats
from tests.metrics.conftest import write_images


class MeanColour:
    """A stand-in extractor (pytorch-fid's test idea): the mean colour in [0, 1] is the feature."""

    has_logits = False

    def __init__(self) -> None:
        self.calls = 0
        self.tag = "a"

    def cache_settings(self) -> dict[str, object]:
        return {"extractor": "mean-colour", "weights_sha256": self.tag}

    def extract_files(self, files: list[Path], progress: Any = None) -> Any:
        from diffedit.metrics.features import Features, load_rgb

        self.calls += 1
        return Features(np.stack([load_rgb(f).reshape(-1, 3).mean(0) / 255 for f in files]), None)


def test_statistics_match_pytorch_fid_values(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "imgs", [np.full((4, 4, 3), v, np.uint8) for v in (0, 127, 255)])
    stats = StatsCache(tmp_path / "c").folder_stats(folder, MeanColour())  # type: ignore[arg-type]
    assert np.allclose(stats.mu, 0.5, atol=1e-3) and np.allclose(stats.sigma, 0.25, atol=1e-3)


def test_npz_round_trip_and_pytorch_fid_reads_it(tmp_path: Path) -> None:
    from pytorch_fid.fid_score import compute_statistics_of_path

    feats = np.random.default_rng(0).normal(size=(10, 5))
    path = save_stats(tmp_path / "s.npz", Statistics.from_features(feats), {"k": 1})
    mu, sigma = compute_statistics_of_path(str(path), None, 1, 5, "cpu")
    back = load_stats(path)
    assert np.allclose(mu, feats.mean(0)) and np.allclose(sigma, back.sigma) and back.n == 10
    np.savez(tmp_path / "plain.npz", mu=mu, sigma=sigma)  # pytorch-fid's own file: no features
    plain = load_stats(tmp_path / "plain.npz")
    assert plain.features is None and plain.n == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_cache_hits_and_misses(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = write_images(tmp_path / "imgs", [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)])
    cache, ex = StatsCache(tmp_path / "c"), MeanColour()
    first = cache.folder_stats(folder, ex)  # type: ignore[arg-type]
    again = cache.folder_stats(folder, ex)  # type: ignore[arg-type]
    assert (cache.misses, cache.hits, ex.calls) == (1, 1, 1) and np.array_equal(first.sigma, again.sigma)
    ex.tag = "b"  # other weights: a different key
    cache.folder_stats(folder, ex)  # type: ignore[arg-type]
    write_images(folder, [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)])  # files changed
    cache.folder_stats(folder, ex)  # type: ignore[arg-type]
    assert (cache.misses, cache.hits, ex.calls) == (3, 1, 3)
    assert len(list((tmp_path / "c").glob("*.npz"))) == 3


def test_identical_sets_give_fid_near_zero(tmp_path: Path, extractor: Any, photos: list[np.ndarray]) -> None:
    from diffedit.metrics.evaluate import SmallSetWarning, compare_folders

    ref = write_images(tmp_path / "ref", photos)
    same = write_images(tmp_path / "same", photos)
    cache = StatsCache(tmp_path / "c")
    with pytest.warns(SmallSetWarning):
        result = compare_folders(ref, same, extractor, cache)
    assert abs(result["fid"]) < 1e-3 * np.trace(load_stats(next((tmp_path / "c").glob("*.npz"))).sigma)
    # unbiased MMD² of a set with itself is <= 0 (the diagonal is left out within sets, kept across)
    assert result["kid"] <= 1e-9 and result["n_ref"] == result["n_images"] == 3
    cache.folder_stats(ref, extractor)  # the reference again: from the cache
    assert (cache.misses, cache.hits) == (1, 1)
