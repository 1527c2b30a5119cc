"""Two CPU processes (gloo) train data-parallel: their weights must stay identical."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    from diffedit.training import distributed
    from diffedit.training.config import TrainConfig
    from diffedit.training.loop import Trainer

    trainer = Trainer(TrainConfig(data=data, out=out, preset="tiny", size=16, steps=3, batch=2, lr=1e-3,
                                  checkpoint_every=100, sample_steps=1, sample_count=1, val_fraction=0.0,
                                  device="cpu"))
    assert trainer.dist.world_size == world and trainer.dist.rank == rank
    losses = [p.loss for p in trainer.run()]
    torch.save({"unet": trainer.unet.state_dict(), "ema": trainer.ema.model.state_dict(), "losses": losses},
               Path(out) / f"rank{rank}.pt")
    distributed.shutdown(trainer.dist)


def test_two_processes_keep_equal_weights(image_folder, tmp_path) -> None:
    root = image_folder(n=8)
    out = tmp_path / "out"
    out.mkdir()
    import diffusers

    diffusers.UNet2DModel, diffusers.DDIMScheduler  # noqa: B018 - imported once here, inherited by the workers
    # fork: the workers inherit torch and diffusers already imported (spawn re-imports them: ~7 s each)
    mp.start_processes(_worker, args=(2, _free_port(), str(root), str(out)), nprocs=2, join=True,
                       start_method="fork")
    a, b = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert a["losses"] == b["losses"]  # the logged loss is the mean over ranks
    for key in ("unet", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), name
    assert (out / "checkpoints" / "step-000003" / "diffedit.json").is_file()  # written by rank 0 only
