"""Training batches built ahead of the accelerator, in worker processes.

Why: a GPU takes a step of a small UNet in milliseconds, while decoding, cropping, degrading (JPEG,
noise, holes and their fill) and stacking a batch in Python takes tens of milliseconds, so one
process leaves the GPU idle most of the time. Each micro-batch is a pure function of (seed,
micro-batch number, rank), so workers can build them in any order and a run stays exactly
reproducible and resumable whatever the number of workers. Processes, not threads: most of the work
holds the GIL. They start with "spawn", which is safe beside a CUDA context (fork is not).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from diffedit.diffusion.models import Manifest
from diffedit.training.data import Item, batch_indices, load_example
from diffedit.training.objective import Batch, make_batch


@dataclass(frozen=True)
class BatchRecipe:
    """Everything needed to build micro-batch k of one rank (sent once to each worker)."""

    items: tuple[Item, ...]
    size: int
    channels: int
    crop: str
    manifest: Manifest
    seed: int
    batch: int
    rank: int = 0
    world: int = 1


def build_micro_batch(recipe: BatchRecipe, k: int) -> Batch:
    """Micro-batch k (k = step x accumulate + micro): images, crops and degradations all drawn from
    generators seeded with (seed, k, rank)."""
    rng = np.random.default_rng([recipe.seed, k, recipe.rank, 0xB47C])
    ids = batch_indices(len(recipe.items), recipe.batch, k, seed=recipe.seed, rank=recipe.rank, world=recipe.world)
    examples = [load_example(recipe.items[i], recipe.size, recipe.channels, rng, crop=recipe.crop) for i in ids]
    return make_batch(examples, recipe.manifest, rng)


def auto_workers(device_type: str, cpus: int | None = None) -> int:
    """Workers when the user asks for none in particular: none on the CPU, where training already uses
    every core; on an accelerator, enough cores to keep it fed, one left for the main process."""
    if device_type == "cpu":
        return 0
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                          else os.cpu_count() or 1)
    return max(0, min(8, cpus - 1))


_RECIPE: BatchRecipe | None = None


def _start_worker(recipe: BatchRecipe) -> None:
    global _RECIPE
    import torch

    torch.set_num_threads(1)  # many workers; each one thread
    _RECIPE = recipe


def _build_in_worker(k: int) -> Batch:
    assert _RECIPE is not None
    return build_micro_batch(_RECIPE, k)


class Prefetcher:
    """`get(k)` returns micro-batch k, keeping the next `depth` micro-batches in flight.

    With `workers` 0 it builds each batch when asked, in this process. Errors raised while a worker
    built a batch (an unreadable image) come back from `get` as if raised here.
    """

    def __init__(self, recipe: BatchRecipe, workers: int, depth: int | None = None) -> None:
        self.recipe = recipe
        self.workers = workers
        self.depth = depth if depth is not None else 2 * workers
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[int, Future[Batch]] = {}
        if workers > 0:
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(recipe,))

    def get(self, k: int) -> Batch:
        if self._pool is None:
            return build_micro_batch(self.recipe, k)
        for ahead in range(k, k + self.depth + 1):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(_build_in_worker, ahead)
        for stale in [j for j in self._pending if j < k]:  # a resume or a skip: drop what is not needed
            self._pending.pop(stale).cancel()
        return self._pending.pop(k).result()

    def close(self) -> None:
        if self._pool is not None:
            for future in self._pending.values():
                future.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

