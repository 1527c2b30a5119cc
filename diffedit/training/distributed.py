"""Data-parallel training through torch.distributed when started by torchrun (RANK, WORLD_SIZE).

One process per device; every rank sees a different shard of each step's images (see
`data.batch_indices`), DDP averages the gradients, so the weights stay identical on all ranks and only
rank 0 writes checkpoints, samples and logs. Decisions to stop (a NaN or inf loss on any rank, NaN
weights, a checkpoint rank 0 could not write) are taken collectively: one all-reduce of a flag per
rank, so all ranks stop together with the same message instead of some waiting forever in the next
collective.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env(environ: dict[str, str] | None = None) -> DistInfo:
    """Rank and world size as torchrun sets them; a plain run is rank 0 of 1."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    return DistInfo(rank, world, int(env.get("LOCAL_RANK", str(rank))))


def init(device: torch.device) -> DistInfo:
    """Join the process group when launched with WORLD_SIZE > 1 (NCCL on CUDA, gloo on the CPU)."""
    info = from_env()
    if not info.enabled:
        return info
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


def device_for(info: DistInfo, device: torch.device) -> torch.device:
    """Each rank takes its own GPU (LOCAL_RANK); CPU ranks share the CPU."""
    if device.type == "cuda" and info.enabled:
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return device


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> Any:
    """The model as DDP when distributed (gradients averaged over ranks), else unchanged."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean over ranks."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def mean_and_bad_ranks(value: torch.Tensor, info: DistInfo) -> tuple[float, list[int]]:
    """(mean of a scalar over ranks, the ranks whose own value is NaN or inf), from one all-reduce, so
    every rank gets the same answer and takes the same decision (a rank that stopped alone would leave
    the others waiting in the next collective)."""
    local = float(value.detach())
    bad = not math.isfinite(local)
    if not info.enabled:
        return local, [info.rank] if bad else []
    import torch.distributed as dist

    buf = torch.zeros(1 + info.world_size, dtype=torch.float64, device=value.device)
    buf[0] = local
    buf[1 + info.rank] = float(bad)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    flags = buf[1:].tolist()
    return float(buf[0]) / info.world_size, [r for r, f in enumerate(flags) if f > 0]


def ranks_where(flag: bool, info: DistInfo, device: torch.device | None = None) -> list[int]:
    """The ranks where `flag` is true, the same list on every rank (one all-reduce; also a barrier)."""
    if not info.enabled:
        return [info.rank] if flag else []
    import torch.distributed as dist

    buf = torch.zeros(info.world_size, device=device)
    buf[info.rank] = float(flag)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return [r for r, f in enumerate(buf.tolist()) if f > 0]


def from_rank0(value: int, info: DistInfo, device: torch.device | None = None) -> int:
    """Rank 0's `value` on every rank (a decision that timing could make differently per rank)."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    buf = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(buf, src=0)
    return int(buf.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
