"""Metrics speed on this machine: Inception feature extraction (images/s) and the 2048-d matrix square root.

    .venv/bin/python benchmarks/metrics_bench.py [--threads N] [--images N] [--batch N]

Prints one line per measurement; record the figures in the benchmarks results file by hand.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def bench_features(n: int, batch: int) -> float:
    from diffedit.metrics.features import FeatureExtractor

    ex = FeatureExtractor(batch_size=batch)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(n)]
    ex.extract(images[:batch], batch)  # warm-up
    t = time.perf_counter()
    ex.extract(images, n)
    return n / (time.perf_counter() - t)


def bench_sqrtm(dim: int, n: int) -> tuple[float, float, float]:
    from diffedit.metrics.fid import frechet_distance, frechet_distance_eig

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n, dim)), rng.normal(size=(n, dim)) * 1.1 + 0.1
    m1, s1, m2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    t = time.perf_counter()
    f1 = frechet_distance(m1, s1, m2, s2)
    t_sqrtm = time.perf_counter() - t
    t = time.perf_counter()
    f2 = frechet_distance_eig(m1, s1, m2, s2)
    t_eig = time.perf_counter() - t
    return t_sqrtm, t_eig, abs(f1 - f2) / abs(f1)


def main() -> None:
    import torch

    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--samples", type=int, default=4096, help="feature vectors behind each covariance")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"features: {bench_features(args.images, args.batch):.2f} images/s "
          f"(batch {args.batch}, {args.threads} threads, 256 px inputs resized to 299)")
    t_sqrtm, t_eig, rel = bench_sqrtm(2048, args.samples)
    print(f"2048-d distance: scipy sqrtm {t_sqrtm:.2f} s, eigenvalues {t_eig:.2f} s, relative difference {rel:.1e}")


if __name__ == "__main__":
    main()
