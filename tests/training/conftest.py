"""Tiny generated image folders for the training tests (16 px, a handful of files)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


def blob_image(rng: np.random.Generator, size: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A flat background with one coloured disc: simple enough that a tiny model learns it fast."""
    yy, xx = np.mgrid[:size, :size]
    cx, cy = rng.uniform(size * 0.3, size * 0.7, 2).tolist()
    r = size * 0.25
    img = np.full((size, size, 3), 40, np.uint8)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = colour
    return img


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., Path]:
    """`image_folder(n=8, classes=(), captions=False, masks=False, size=20)` -> a folder of PNGs."""

    def make(n: int = 8, classes: tuple[str, ...] = (), captions: bool = False, masks: bool = False,
             size: int = 20, name: str = "data") -> Path:
        root = tmp_path / name
        rng = np.random.default_rng(0)
        colours = [(230, 60, 60), (60, 200, 90), (70, 90, 230)]
        for i in range(n):
            label = i % len(classes) if classes else 0
            folder = root / classes[label] if classes else root
            folder.mkdir(parents=True, exist_ok=True)
            img = blob_image(rng, size, colours[label % 3])
            Image.fromarray(img).save(folder / f"img{i:02d}.png")
            if captions:
                (folder / f"img{i:02d}.txt").write_text(f"a {['red', 'green', 'blue'][label % 3]} disc")
            if masks:
                Image.fromarray(np.where(img[..., 0] != 40, 255, 0).astype(np.uint8)).save(
                    folder / f"img{i:02d}.mask.png")
        return root

    return make


@pytest.fixture
def tiny() -> Callable[..., Any]:
    """`tiny(data, out, **overrides)`: a TrainConfig for a 16 px tiny model that runs in seconds."""
    return tiny_config


def tiny_config(data: Path, out: Path, **overrides: Any) -> Any:
    from diffedit.training.config import TrainConfig

    values: dict[str, Any] = {"preset": "tiny", "size": 16, "steps": 4, "batch": 4, "lr": 1e-3,
                              "checkpoint_every": 100, "sample_steps": 2, "sample_count": 2, "val_fraction": 0.0}
    values.update(overrides)
    return TrainConfig(data=str(data), out=str(out), **values)
