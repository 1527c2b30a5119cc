"""Two CPU processes (gloo) train data-parallel: their weights must stay identical, and a NaN loss on
one rank stops both together."""

from __future__ import annotations

import os
import re
import socket
import time
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


def _failing_worker(rank: int, world: int, port: int, data: str, out: str, mode: str) -> None:
    """mode "nan": rank 1 alone gets a NaN loss from step 3 on; "save": rank 0 cannot write the checkpoint
    of step 4. Each rank writes the steps it made and the message it stopped with."""
    torch.set_num_threads(1)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    from diffedit.training import distributed
    from diffedit.training.config import TrainConfig, TrainingError
    from diffedit.training.loop import Trainer

    real = Trainer.compute_loss

    def broken(self, batch, gen):  # this process only (forked): the other rank computes true losses
        loss = real(self, batch, gen)
        return loss * float("nan") if self.step >= 2 and self.dist.rank == 1 else loss

    real_checkpoint = Trainer._checkpoint

    def disk_full(self):
        if self.step == 4:
            raise OSError("No space left on device")
        return real_checkpoint(self)

    if mode == "nan":
        Trainer.compute_loss = broken  # type: ignore[method-assign]
    else:
        Trainer._checkpoint = disk_full  # type: ignore[method-assign]
    trainer = Trainer(TrainConfig(data=data, out=out, preset="tiny", size=16, steps=6, batch=2, lr=1e-3,
                                  checkpoint_every=2, sample_steps=1, sample_count=1, val_fraction=0.0,
                                  device="cpu"))
    steps = []
    try:
        for p in trainer.run():
            steps.append(p.step)
        message = "finished"
    except (TrainingError, OSError) as exc:
        message = str(exc)
    finally:
        distributed.shutdown(trainer.dist)
    (Path(out) / f"rank{rank}.txt").write_text(f"{steps}\n{message}")


def _run_failing(root: Path, out: Path, mode: str) -> list[list[str]]:
    out.mkdir()
    context = mp.start_processes(_failing_worker, args=(2, _free_port(), str(root), str(out), mode), nprocs=2,
                                 join=False, start_method="fork")
    deadline = time.monotonic() + 120  # a rank left waiting in a collective would hang here
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError("a rank did not stop: " + str([p.is_alive() for p in context.processes]))
    return [(out / f"rank{r}.txt").read_text().split("\n", 1) for r in (0, 1)]


def test_a_nan_on_one_rank_stops_every_rank(image_folder, tmp_path) -> None:
    out = tmp_path / "out"
    reports = _run_failing(image_folder(n=8), out, "nan")
    assert reports[0] == reports[1], reports  # the same steps and the same message on both ranks
    steps, message = reports[0]
    assert steps == "[1, 2]"
    assert re.search(r"loss became nan at step 3 \(on rank 1\).*last good checkpoint is .*step-000002", message), \
        message
    assert (out / "checkpoints" / "step-000002" / "diffedit.json").is_file()
    assert not (out / "checkpoints" / "step-000004").exists()


def test_a_checkpoint_rank_0_cannot_write_stops_every_rank(image_folder, tmp_path) -> None:
    out = tmp_path / "out"
    (steps0, message0), (steps1, message1) = _run_failing(image_folder(n=8), out, "save")
    assert steps0 == steps1 == "[1, 2, 3]"
    assert message0 == "No space left on device"
    assert re.search(r"rank 0 could not write the checkpoint of step 4.*last good checkpoint is .*step-000002",
                     message1), message1
