"""Engine benchmarks (run by hand): the denoise loop's overhead over bare model evaluations, side by
side with diffusers' DDIMPipeline on the same UNet, and sampling time per task at 64 and 256 px.

    python benchmarks/engine_bench.py [--steps 50] [--repeats 3] [--threads 2]

Figures go into benchmarks/RESULTS.md (target: our loop within 3 % of the bare model time, and no
slower than diffusers).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from diffedit.diffusion.checkpoints import save_checkpoint
from diffedit.diffusion.loop import denoise
from diffedit.diffusion.models import build
from diffedit.diffusion.samplers import get_sampler, make_scheduler
from diffedit.plugins import PluginHost
from diffedit.settings import Settings
from diffedit.tasks.base import TaskRequest
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task


def _median_times(fns, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Median time of each function, the runs interleaved so that all see the same machine load."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def loop_overhead(steps: int, repeats: int, preset: str, size: int) -> None:
    import diffusers

    bundle = build("generate", preset=preset, image_size=size, seed=0)
    unet = bundle.unet.eval()
    shape = (1, 3, size, size)
    sampler = get_sampler("ddim")
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    timesteps = make_scheduler(sampler, bundle.scheduler_config)
    timesteps.set_timesteps(steps)

    def bare() -> None:
        with torch.no_grad():
            for t in timesteps.timesteps:
                unet(x, t)

    def ours() -> None:
        with torch.no_grad():
            denoise(lambda x_in, t: unet(x_in, t).sample, make_scheduler(sampler, bundle.scheduler_config), sampler,
                    shape=shape, steps=steps, generator=torch.Generator().manual_seed(0))

    pipe = diffusers.DDIMPipeline(unet=unet, scheduler=make_scheduler(sampler, bundle.scheduler_config))
    pipe.set_progress_bar_config(disable=True)

    def theirs() -> None:
        pipe(batch_size=1, num_inference_steps=steps, eta=0.0, generator=torch.Generator().manual_seed(0),
             output_type="np")

    bare(), ours(), theirs()  # warm-up
    t_bare, t_ours, t_theirs = _median_times((bare, ours, theirs), repeats)
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"\nDDIM {steps} steps, preset {preset} ({params:.1f} M), {size} px, median of {repeats}:")
    print("| | seconds | vs bare model |")
    print("|---|---|---|")
    print(f"| bare model evaluations | {t_bare:.3f} | - |")
    print(f"| diffedit denoise loop | {t_ours:.3f} | {100 * (t_ours / t_bare - 1):+.1f} % |")
    print(f"| diffusers DDIMPipeline | {t_theirs:.3f} | {100 * (t_theirs / t_bare - 1):+.1f} % |")


def task_times(steps: int) -> None:
    registry = PluginHost(settings=Settings(), autoload=False).discover()
    kinds = {"generate": {"task": "generate"}, "img2img": {"task": "generate"}, "inpaint": {"task": "inpaint"},
             "restore": {"task": "restore"}, "super-resolve": {"task": "super-resolve", "scale_factor": 2},
             "segment": {"task": "segment"}}
    print(f"\nTask sampling time, tiny preset, DDIM {steps} steps:")
    print("| task | 64 px | 256 px |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for task, kind in kinds.items():
            folder = Path(tmp) / task
            save_checkpoint(folder, build(preset="tiny", seed=0, **kind))
            row = []
            for size in (64, 256):
                rng = np.random.default_rng(0)
                image = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
                image[..., 3] = 255
                in_size = size // 2 if task == "super-resolve" else size
                mask = np.zeros((size, size), np.uint8)
                mask[size // 4 : size // 2, size // 4 : size // 2] = 255
                values = {"steps": steps, "seed": 0, "sampler": "ddim"}
                if task == "generate":
                    values.update(width=size, height=size)
                if task == "img2img":
                    values.update(strength=1.0)
                if task in ("restore", "super-resolve", "segment"):
                    values.update(tile=size)
                params = make_params(registry.tasks[task].params, values)
                request = TaskRequest(task=task, params=params, model=str(folder),
                                      image=None if task == "generate" else image[:in_size, :in_size].copy(),
                                      mask=mask if task == "inpaint" else None, device="cpu")
                t = time.perf_counter()
                run_task(request, registry)
                row.append(time.perf_counter() - t)
            print(f"| {task} | {row[0]:.2f} s | {row[1]:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    loop_overhead(args.steps, args.repeats, "tiny", 64)
    loop_overhead(args.steps, args.repeats, "small", 64)
    task_times(20)


if __name__ == "__main__":
    main()
