"""Shared fixtures for diffusion tests: tiny models built and saved once per session, all offline."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Kinds of tiny model the tests build: name -> keyword arguments of diffedit.diffusion.models.build.
TINY_KINDS: dict[str, dict[str, Any]] = {
    "unconditional": {"task": "generate"},
    "class": {"task": "generate", "conditioning": "class", "class_names": ["cat", "dog", "fox"]},
    "inpaint": {"task": "inpaint"},
    "text": {"task": "generate", "conditioning": "text"},
    "latent": {"task": "inpaint", "latent": True, "image_size": 64, "prediction_type": "v_prediction"},
}


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Any:
    """Tiny models gain nothing from threads, and OpenMP threads on a shared two-core machine stall
    each other: forward passes of 10 ms were seen taking 1.3 s with two threads under load."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bundle() -> Callable[[str], Any]:
    """`tiny_bundle(kind)`: a tiny ModelBundle of a TINY_KINDS kind, seeded, built once."""
    from diffedit.diffusion.models import build

    cache: dict[str, Any] = {}

    def make(kind: str) -> Any:
        if kind not in cache:
            cache[kind] = build(preset="tiny", seed=1, **TINY_KINDS[kind])
        return cache[kind]

    return make


@pytest.fixture(scope="session")
def saved_checkpoint(tmp_path_factory: pytest.TempPathFactory,
                     tiny_bundle: Callable[[str], Any]) -> Callable[[str], Path]:
    """`saved_checkpoint(kind)`: a pristine checkpoint folder of that kind (copy it before changing it)."""
    from diffedit.diffusion.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    cache: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in cache:
            save_checkpoint(root / kind, tiny_bundle(kind))
            cache[kind] = root / kind
        return cache[kind]

    return make


def _unet_inputs(bundle: Any, size: int | None = None, batch: int = 1, seed: int = 0) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)
    m, config = bundle.manifest, bundle.unet.config
    side = (size or m.image_size) // (m.image_size // config.sample_size)
    kwargs: dict[str, Any] = {
        "sample": torch.randn(batch, config.in_channels, side, side, generator=g),
        "timestep": torch.tensor([500] * batch),
    }
    if m.conditioning == "class":
        kwargs["class_labels"] = torch.tensor([i % (len(m.class_names) + 1) for i in range(batch)])
    if m.conditioning == "text":
        kwargs["encoder_hidden_states"] = bundle.text_encoder.encode(["a red fox"] * batch)
    return kwargs


@pytest.fixture(scope="session")
def unet_inputs() -> Callable[..., dict[str, Any]]:
    """`unet_inputs(bundle, size=None, batch=1, seed=0)`: random keyword arguments for one UNet forward
    pass of a bundle or LoadedModel (sample, timestep and its class labels or text states)."""
    return _unet_inputs
