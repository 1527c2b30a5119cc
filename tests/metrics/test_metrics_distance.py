"""The Fréchet distance on known statistics (pytorch-fid's own test values), KID, IS, PSNR and SSIM."""

from __future__ import annotations

import numpy as np
import pytest

from diffedit.metrics.fid import frechet_distance, frechet_distance_eig
from diffedit.metrics.inception_score import inception_score
from diffedit.metrics.kid import kernel_inception_distance


def test_equal_covariances_give_squared_mean_distance() -> None:
    """pytorch-fid's test_calculate_fid_given_statistics: mu 0 vs 1, sigma I, 2048-d -> exactly 2048."""
    dim = 2048
    m1, m2, sigma = np.zeros(dim), np.ones(dim), np.eye(dim)
    assert frechet_distance(m1, sigma, m2, sigma) == np.sum((m1 - m2) ** 2)


def _random_stats(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.1
    return x.mean(0), np.cov(x, rowvar=False)


def test_matches_pytorch_fid_and_eigen_route() -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    (m1, s1), (m2, s2) = _random_stats(rng, 400, 64), _random_stats(rng, 400, 64)
    with pytest.warns(DeprecationWarning):  # pytorch-fid passes scipy's deprecated disp=
        expected = calculate_frechet_distance(m1, s1, m2, s2)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_eig(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0, abs=1e-8)


def test_kid_is_unbiased_and_separates() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
    same, _ = kernel_inception_distance(a, b, subsets=20, subset_size=100)
    far, std = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 and far > 10 * abs(same) and std >= 0
    with pytest.raises(ValueError):
        kernel_inception_distance(a[:1], b)


def test_inception_score_bounds() -> None:
    confident = np.eye(10)[np.arange(100) % 10] * 50  # every class, each predicted with certainty
    assert inception_score(confident, splits=1)[0] == pytest.approx(10, rel=1e-3)
    assert inception_score(np.zeros((50, 10)), splits=5)[0] == pytest.approx(1.0)


def test_psnr_and_ssim_match_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    from diffedit.metrics.image_quality import psnr, ssim

    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=255), rel=1e-9)
    expected = metrics.structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True,
                                             sigma=1.5, use_sample_covariance=True)
    assert ssim(a, b) == pytest.approx(expected, rel=1e-6)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
