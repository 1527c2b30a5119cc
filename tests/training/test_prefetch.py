"""Batches built ahead in worker processes (diffedit.training.prefetch): the same batches, in any
order and with any number of workers, as the training process would build itself; errors come back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from diffedit.diffusion.models import build
from diffedit.training import repair
from diffedit.training.data import Item
from diffedit.training.loop import Trainer
from diffedit.training.objective import Batch
from diffedit.training.prefetch import BatchRecipe, Prefetcher, auto_workers, build_micro_batch


def _repair_manifest():
    return build("restore", "class", "tiny", 16, class_names=repair.CLASSES, condition_channels=3,
                 mask_channel=True, prediction_type="sample", residual=True, tasks=repair.TASKS,
                 scale_factors=repair.SCALE_FACTORS, scale_factor=2, hole_fill="smooth", seed=0,
                 default_steps=1).manifest


def _recipe(folder: Path, **changes) -> BatchRecipe:
    items = tuple(Item(p) for p in sorted(folder.glob("*.png")))
    values = {"items": items, "size": 16, "channels": 3, "crop": "patch", "manifest": _repair_manifest(),
              "seed": 3, "batch": 4}
    values.update(changes)
    return BatchRecipe(**values)


def _assert_same(a: Batch, b: Batch) -> None:
    for name in ("x", "concat", "mask", "labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert x is not None and y is not None, name
        assert torch.equal(x, y), name


def test_a_micro_batch_is_a_pure_function_of_its_number(image_folder) -> None:
    recipe = _recipe(image_folder(n=6, size=24))
    first = build_micro_batch(recipe, 2)
    _assert_same(first, build_micro_batch(recipe, 2))
    assert first.x.shape == (4, 3, 16, 16) and first.concat.shape == (4, 3, 16, 16)
    assert not torch.equal(first.x, build_micro_batch(recipe, 3).x)  # another number, another batch
    assert not torch.equal(first.x, build_micro_batch(replace(recipe, rank=1, world=2), 2).x)


def test_workers_build_the_batches_the_training_process_would(image_folder) -> None:
    recipe = _recipe(image_folder(n=6, size=24))
    expected = [build_micro_batch(recipe, k) for k in range(5)]
    inline = Prefetcher(recipe, 0)
    pool = Prefetcher(recipe, 2)
    try:
        assert pool.depth == 4 and inline.depth == 0
        for k in range(5):
            _assert_same(inline.get(k), expected[k])
        for k in (0, 1, 2):
            _assert_same(pool.get(k), expected[k])
        # out of order, as a resume or a second get of the same step would ask
        _assert_same(pool.get(4), expected[4])
        _assert_same(pool.get(3), expected[3])
        _assert_same(pool.get(1), expected[1])
        assert all(j > 1 for j in pool._pending)  # nothing older than the last ask is kept waiting
    finally:
        pool.close()
        inline.close()
    pool.close()  # idempotent
    assert pool._pool is None and not pool._pending


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_image_surfaces_from_get(image_folder, workers) -> None:
    folder = image_folder(n=2, size=24)
    bad = folder / "broken.png"
    bad.write_bytes(b"not an image at all")
    recipe = _recipe(folder, items=(Item(bad),), batch=2)
    batches = Prefetcher(recipe, workers)
    try:
        with pytest.raises(OSError, match=r"cannot identify image file .*broken\.png"):
            batches.get(0)
    finally:
        batches.close()
    batches.close()


def test_auto_workers() -> None:
    assert auto_workers("cpu") == 0 and auto_workers("cpu", cpus=16) == 0
    assert auto_workers("cuda", cpus=16) == 8 and auto_workers("cuda", cpus=4) == 3
    assert auto_workers("cuda", cpus=1) == 0
    assert 0 <= auto_workers("cuda") <= 8


def test_training_with_workers_repeats_the_losses_of_training_without(image_folder, tiny, tmp_path) -> None:
    root = image_folder(n=5, size=24)
    losses = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        progress = list(Trainer(tiny(root, out, task="repair", steps=3, batch=3, workers=workers, seed=2)).run())
        logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses[workers] = [r["loss"] for r in logged if "loss" in r]
        assert losses[workers] == [p.loss for p in progress] and len(progress) == 3
    assert losses[0] == losses[2]
