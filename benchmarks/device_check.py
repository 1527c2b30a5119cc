"""The shipped models on each device and precision: same figures as on the CPU, and how fast.

    python benchmarks/device_check.py --data DATA [--configs cpu:fp32 cuda:fp32 cuda:fp16 cuda:bf16]
                                      [--photos 12] [--big 2048] [--json OUT.json]

For each configuration it runs the default repair model on the held-out crops (noise sigma 25, JPEG
q20, x4, a brush hole; one step) and reports the mean PSNR against the clean crops, the largest
difference from the first configuration's output (uint8 levels) and the time per crop, then times
one large restore (--big px square, one step and the self-ensemble) and 25 steps of each shipped
generator (the standard deviation of its image shows a NaN or blank result as 0). Why: half precision
and cuDNN kernels must not change what users get, only how fast; a regression there shows as a PSNR
drop or a large difference, not as an exception.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quality import Runner, _generator, _score, centre_crop, jpeg

from diffedit.models_registry import default_model_for
from diffedit.tasks.base import TaskRequest
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task
from diffedit.training import degrade

CASES = ("noise sigma 25", "JPEG q20", "x4", "hole")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def degraded_inputs(photos: list[Path], size: int) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(case, clean, degraded, hole mask) for every photo and case, seeded as benchmarks/quality.py."""
    out = []
    for i, path in enumerate(photos):
        clean = centre_crop(path, size)
        rng = np.random.default_rng(1000 + i)
        out.append(("noise sigma 25", clean, degrade.gaussian_noise(clean, rng, 25.0), None))
        out.append(("JPEG q20", clean, jpeg(clean, 20), None))
        out.append(("x4", clean, degrade.downscale(clean, 4), None))
        out.append(("hole", clean, clean, degrade.brush_mask(size, np.random.default_rng(2000 + i))))
    return out


def run_case(run: Runner, case: str, degraded: np.ndarray, mask: np.ndarray | None, **extra: Any) -> np.ndarray:
    if case == "x4":
        return run("super-resolve", degraded, scale=4, steps=1, **extra)
    if case == "hole":
        return run("inpaint", degraded, mask=mask, steps=1, **extra)
    return run("restore", degraded, steps=1, **extra)


def check(config: str, inputs: list, reference: list[np.ndarray] | None, big: int) -> tuple[dict[str, Any], list]:
    device, precision = config.split(":")
    run = Runner(str(default_model_for("restore")), device, precision)
    for case, _, degraded, mask in inputs[:4]:  # warm-up: loading, cuDNN autotuning, one of each case
        run_case(run, case, degraded, mask)
    outputs, scores, seconds = [], {c: [] for c in CASES}, 0.0
    for case, clean, degraded, mask in inputs:
        _sync(device)
        start = time.perf_counter()
        out = run_case(run, case, degraded, mask)
        _sync(device)
        seconds += time.perf_counter() - start
        outputs.append(out)
        scores[case].append(_score(clean, out, mask)[0])
    row: dict[str, Any] = {"config": config, "psnr": {c: round(float(np.mean(v)), 3) for c, v in scores.items()},
                           "ms_per_crop": round(1000 * seconds / len(inputs), 1)}
    if reference is not None:
        row["max_diff_vs_first"] = int(max(np.abs(a.astype(int) - b.astype(int)).max()
                                           for a, b in zip(outputs, reference, strict=True)))
        row["mean_diff_vs_first"] = round(float(np.mean([np.abs(a.astype(int) - b.astype(int)).mean()
                                                         for a, b in zip(outputs, reference, strict=True)])), 4)
    if big and device != "cpu":  # a CPU takes minutes for the self-ensemble of a large image
        image = np.random.default_rng(0).integers(0, 256, (big, big, 3), dtype=np.uint8)
        for key, extra in (("big_restore_s", {}), ("big_restore_ensemble_s", {"ensemble": True})):
            _sync(device)
            start = time.perf_counter()
            run("restore", image, steps=1, **extra)
            _sync(device)
            row[key] = round(time.perf_counter() - start, 2)
    for name in ("digits", "textures"):
        model = _generator(name)
        if model is None:
            continue
        gen = Runner(model, device, precision)
        spec = gen.registry.tasks["generate"]
        request = TaskRequest(task="generate", params=make_params(spec.params, {"seed": 0, "steps": 25}),
                              model=model, device=device, precision=precision)
        run_task(request, gen.registry)  # warm-up
        _sync(device)
        start = time.perf_counter()
        image = run_task(request, gen.registry).image
        _sync(device)
        row[f"{name}_25_steps_s"] = round(time.perf_counter() - start, 3)
        row[f"{name}_std"] = round(float(image[..., :3].std()), 1)  # a NaN or blank result shows as 0
    return row, outputs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a folder with heldout/ (scripts/photo_data.py)")
    p.add_argument("--configs", nargs="+", default=["cpu:fp32", "cuda:fp32", "cuda:fp16", "cuda:bf16"])
    p.add_argument("--photos", type=int, default=12)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--big", type=int, default=2048, help="side of the large restore, not on the CPU (0: skip)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here (after each one)")
    args = p.parse_args()
    inputs = degraded_inputs(sorted((args.data / "heldout").glob("*.png"))[: args.photos], args.size)
    rows, reference = [], None
    for config in args.configs:
        row, outputs = check(config, inputs, reference, args.big)
        reference = reference if reference is not None else outputs
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                                             else "cpu", "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
