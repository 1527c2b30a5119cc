"""Training throughput: our Trainer against a bare diffusers-style loop (run by hand).

    python benchmarks/train_bench.py [--size 32] [--batch 16] [--steps 30] [--threads 2] [--device cpu]

Both train the same tiny UNet (preset "tiny", generate) with AdamW on the same batch size. The bare
loop is what the diffusers examples do: tensors already in memory, add_noise, MSE, backward, step.
Ours adds what a real run needs: decoding + random crops/flips of image files, deterministic
per-step generators, gradient clipping, EMA, the metrics log. Checkpoint steps are excluded (their
cost is reported separately) and the first steps are warm-up.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _dataset(folder: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 256, (size + 8, size + 8, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"{i:03d}.png")


class BareLoop:
    """The diffusers-example training step on random in-memory tensors."""

    def __init__(self, size: int, batch: int, device: str) -> None:
        import diffusers

        from diffedit.diffusion.models import build

        bundle = build("generate", preset="tiny", image_size=size, seed=0)
        self.unet = bundle.unet.to(device).train()
        self.scheduler = diffusers.DDPMScheduler.from_config(bundle.scheduler_config)
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=1e-4)
        self.data = torch.rand(64, 3, size, size) * 2 - 1
        self.batch, self.device = batch, device

    def step(self) -> None:
        x0 = self.data[torch.randint(0, 64, (self.batch,))].to(self.device)
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (self.batch,), device=self.device)
        loss = torch.nn.functional.mse_loss(self.unet(self.scheduler.add_noise(x0, noise, t), t).sample, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def _timed(fn: Callable[[], object], device: str) -> float:
    t0 = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def compare(size: int, batch: int, steps: int, warmup: int, device: str) -> dict[str, float]:
    """Steps of both loops interleaved one by one, so both see the same load on a shared machine."""
    from diffedit.training.config import TrainConfig
    from diffedit.training.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        _dataset(Path(tmp) / "data", 64, size)
        total = steps + warmup
        trainer = Trainer(TrainConfig(data=str(Path(tmp) / "data"), out=str(Path(tmp) / "out"), preset="tiny",
                                      size=size, steps=total + 1, batch=batch, checkpoint_every=total + 1,
                                      val_fraction=0.1, sample_steps=10, device=device))
        bare = BareLoop(size, batch, device)
        run = trainer.run()
        ours_t, bare_t = [], []
        for s in range(total):
            a, b = _timed(lambda: next(run), device), _timed(bare.step, device)
            if s >= warmup:
                ours_t.append(a)
                bare_t.append(b)
        checkpoint_s = _timed(lambda: next(run), device)  # the last step saves a checkpoint
    return {"bare_median": batch / statistics.median(bare_t), "ours_median": batch / statistics.median(ours_t),
            "bare_best": batch / min(bare_t), "ours_best": batch / min(ours_t), "checkpoint_s": checkpoint_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"{args.device}, tiny preset, {args.size} px, batch {args.batch}, {args.steps} steps of each, interleaved")
    r = compare(args.size, args.batch, args.steps, args.warmup, args.device)
    print(f"bare diffusers-style loop: {r['bare_median']:7.1f} images/s median, {r['bare_best']:7.1f} best step")
    print(f"diffedit Trainer:          {r['ours_median']:7.1f} images/s median, {r['ours_best']:7.1f} best step "
          f"({r['ours_median'] / r['bare_median']:.0%} of bare, median)")
    print(f"one checkpoint step (validation, save, sample grid of 10 steps): {r['checkpoint_s']:.2f} s")


if __name__ == "__main__":
    main()
