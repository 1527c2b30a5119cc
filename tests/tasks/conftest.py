"""Tiny checkpoints for every built-in task, built once per session with random weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffedit.plugins import PluginHost
from diffedit.settings import Settings

KINDS: dict[str, dict[str, Any]] = {
    "generate": {"task": "generate"},
    "class": {"task": "generate", "conditioning": "class", "class_names": ["cat", "dog"]},
    "text": {"task": "generate", "conditioning": "text"},
    "inpaint": {"task": "inpaint"},
    "latent-inpaint": {"task": "inpaint", "latent": True, "image_size": 64},
    "latent-generate": {"task": "generate", "latent": True, "image_size": 64},
    "super-resolve": {"task": "super-resolve", "scale_factor": 2},
    "restore": {"task": "restore", "start": "degraded"},
    "restore-class": {"task": "restore", "conditioning": "class", "class_names": ["noise", "jpeg"]},
    "segment": {"task": "segment"},
    "img2img": {"task": "img2img"},
}


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Any:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """`checkpoint(kind)`: the folder of a tiny random checkpoint of that kind (built on first use)."""
    from diffedit.diffusion.checkpoints import save_checkpoint
    from diffedit.diffusion.models import build

    root = tmp_path_factory.mktemp("checkpoints")
    made: dict[str, str] = {}

    def get(kind: str) -> str:
        if kind not in made:
            folder = root / kind
            save_checkpoint(folder, build(preset="tiny", seed=1, **KINDS[kind]))
            made[kind] = str(folder)
        return made[kind]

    return get


@pytest.fixture(scope="session")
def registry() -> Any:
    host = PluginHost(settings=Settings(), autoload=False)
    return host.discover()


@pytest.fixture
def photo() -> np.ndarray:
    """A 40x56 RGBA image with structure (gradient and a square)."""
    px = np.zeros((40, 56, 4), np.uint8)
    px[..., 0] = np.arange(56)[None, :] * 4
    px[..., 1] = np.arange(40)[:, None] * 5
    px[10:30, 20:40, 2] = 220
    px[..., 3] = 255
    return px


@pytest.fixture
def hole() -> np.ndarray:
    mask = np.zeros((40, 56), np.uint8)
    mask[12:26, 22:38] = 255
    return mask


def path_of(folder: str) -> Path:
    return Path(folder)
