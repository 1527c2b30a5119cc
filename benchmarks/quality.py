"""Quality of the shipped models on photos they never saw, against classical methods (run by hand).

    python scripts/photo_data.py --out data/            # once: the held-out photos and reference sets
    python benchmarks/quality.py --data data/ [--size 256] [--steps 1 4] [--write]

Restoration, super-resolution and inpainting run through the real task runners (what `diffedit run`
does) on centre crops of data/heldout (MATE's nature photos: never trained on). Baselines on the same
inputs: non-local means (scikit-image, given the true sigma, best of h = 0.6/0.8/1.0 sigma), the
JPEG input itself, bicubic up-sampling (Pillow, as the task's own up-sampler), biharmonic inpainting
(scikit-image; PSNR inside the hole). Generators: FID and KID of samples against their training
sets (data/digits, data/textures), next to the FID of one half of the training set against the
other (what a perfect generator would score at this sample size). `--write` puts the tables into
benchmarks/RESULTS.md between the `quality` markers.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffedit.metrics.image_quality import psnr, ssim
from diffedit.models_registry import default_model_for
from diffedit.plugins import PluginHost
from diffedit.settings import Settings
from diffedit.tasks.base import TaskRequest
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task
from diffedit.training import degrade

RESULTS = Path(__file__).with_name("RESULTS.md")
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "resources" / "models"
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"
Row = dict[str, Any]
REFERENCE_MAX = 600  # training images the generators' samples are compared with (Inception on a CPU)


def centre_crop(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    x, y = (rgb.width - size) // 2, (rgb.height - size) // 2
    return np.asarray(rgb.crop((x, y, x + size, y + size)))


def rgba(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


class Runner:
    """Runs a task of the plugin registry (on the CPU unless told), as `diffedit run` does."""

    def __init__(self, model: str, device: str = "cpu", precision: str = "auto") -> None:
        self.registry = PluginHost(Settings()).discover()
        self.model, self.device, self.precision = model, device, precision

    def __call__(self, task: str, image: np.ndarray, mask: np.ndarray | None = None, **values: Any) -> np.ndarray:
        spec = self.registry.tasks[task]
        params = make_params(spec.params, {"seed": 0, **values})
        request = TaskRequest(task=task, params=params, model=self.model, image=rgba(image), mask=mask,
                              device=self.device, precision=self.precision)
        result = run_task(request, self.registry)
        out = result.image
        if task == "inpaint":  # a patch whose alpha is its blend weight, placed at result.offset
            canvas = rgba(image).copy()
            x, y = result.offset
            patch = out[..., :3].astype(np.float32)
            alpha = out[..., 3:4].astype(np.float32) / 255
            region = canvas[y : y + out.shape[0], x : x + out.shape[1], :3].astype(np.float32)
            canvas[y : y + out.shape[0], x : x + out.shape[1], :3] = np.rint(region * (1 - alpha) + patch * alpha)
            out = canvas
        return out[..., :3]


def nlm(noisy: np.ndarray, clean: np.ndarray, sigma: float) -> np.ndarray:
    """Non-local means with the true sigma, the best of three strengths (the strongest fair baseline)."""
    from skimage.restoration import denoise_nl_means

    x = noisy.astype(np.float32) / 255
    s = sigma / 255
    best, best_psnr = noisy, -1.0
    for k in (0.6, 0.8, 1.0):
        out = denoise_nl_means(x, h=k * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1)
        img = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
        if psnr(clean, img) > best_psnr:
            best, best_psnr = img, psnr(clean, img)
    return best


def nlm_blind(noisy: np.ndarray) -> np.ndarray:
    """Non-local means as a user without the true sigma runs it: sigma estimated from the image
    (scikit-image's estimate_sigma) and h = 0.8 sigma, the setting its documentation suggests."""
    from skimage.restoration import denoise_nl_means, estimate_sigma

    x = noisy.astype(np.float32) / 255
    s = float(np.mean(estimate_sigma(x, channel_axis=-1)))
    out = denoise_nl_means(x, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    out = inpaint_biharmonic(image.astype(np.float64) / 255, mask >= 128, channel_axis=-1)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("RGB"))


def hole_psnr(clean: np.ndarray, out: np.ndarray, mask: np.ndarray) -> float:
    inside = mask >= 128
    mse = float(np.mean((clean[inside].astype(np.float64) - out[inside].astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def _score(clean: np.ndarray, out: np.ndarray, hole: np.ndarray | None) -> tuple[float, float]:
    """(PSNR, SSIM); PSNR only inside the hole for inpainting."""
    return (hole_psnr(clean, out, hole) if hole is not None else psnr(clean, out)), ssim(clean, out)


ENSEMBLE = "model, self-ensemble"


def variants(steps: list[int], ensemble: bool) -> dict[str, dict[str, Any]]:
    """The model runs of each case, by column name: each step count, and the self-ensemble of the first."""
    out: dict[str, dict[str, Any]] = {f"model {k} step": {"steps": k} for k in steps}
    if ensemble:
        out[ENSEMBLE] = {"steps": steps[0], "ensemble": True}
    return out


def restoration_rows(photos: list[Path], size: int, steps: list[int], run: Runner, ensemble: bool = False
                     ) -> list[Row]:
    """One row per degradation: mean PSNR/SSIM of the baseline and of the model at each step count
    (and with the self-ensemble of the first step count; not for inpainting, which has none)."""
    cases: list[tuple[str, str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, Any]]]] = [
        *[(f"noise sigma {s}", "non-local means (true sigma, best h)",
           lambda im, rng, s=s: (degrade.gaussian_noise(im, rng, float(s)), s)) for s in (15, 25, 50)],
        *[(f"JPEG q{q}", "JPEG input", lambda im, rng, q=q: (jpeg(im, q), q)) for q in (10, 20, 30)],
        *[(f"super-resolution x{f}", "bicubic", lambda im, rng, f=f: (degrade.downscale(im, f), f)) for f in (2, 4)],
        ("inpainting (PSNR in the hole)", "biharmonic", lambda im, rng: (im, degrade.brush_mask(im.shape[0], rng))),
    ]
    rows = []
    for name, baseline_name, make in cases:
        runs = variants(steps, ensemble and not name.startswith("inpaint"))
        scores: dict[str, list[tuple[float, float]]] = {baseline_name: [], **{key: [] for key in runs}}
        blind: list[tuple[float, float]] = []
        for i, path in enumerate(photos):
            clean = centre_crop(path, size)
            rng = np.random.default_rng(1000 + i)
            degraded, extra = make(clean, rng)
            if name.startswith("noise"):
                base = nlm(degraded, clean, float(extra))
                blind.append(_score(clean, nlm_blind(degraded), None))
                outs = {key: run("restore", degraded, **v) for key, v in runs.items()}
            elif name.startswith("JPEG"):
                base = degraded
                outs = {key: run("restore", degraded, **v) for key, v in runs.items()}
            elif name.startswith("super"):
                base = degrade.upsample(degraded, int(extra))
                outs = {key: run("super-resolve", degraded, scale=int(extra), **v) for key, v in runs.items()}
            else:
                base = biharmonic(clean, extra)
                outs = {key: run("inpaint", clean, mask=extra, **v) for key, v in runs.items()}
            hole = extra if name.startswith("inpaint") else None
            scores[baseline_name].append(_score(clean, base, hole))
            for key, out in outs.items():
                scores[key].append(_score(clean, out, hole))
        row: Row = {"case": name, "baseline": baseline_name}
        if blind:
            row["blind non-local means"] = tuple(float(np.mean([b[i] for b in blind])) for i in (0, 1))
        for key, values in scores.items():
            row[key] = (float(np.mean([v[0] for v in values])), float(np.mean([v[1] for v in values])))
        rows.append(row)
        print(row, flush=True)
    return rows


def generator_rows(data: Path, run_factory: Callable[[str], Runner], n: int) -> list[Row]:
    """FID/KID of n samples of each shipped generator against its training set, and the two-halves floor."""
    from diffedit.metrics.evaluate import compare
    from diffedit.metrics.features import FeatureExtractor, list_images
    from diffedit.metrics.stats import Statistics

    extractor = FeatureExtractor()
    rows = []
    for label, ref_dir, model_task, classes in (("digits (class-conditional)", data / "digits", "digits", 10),
                                                ("textures (unconditional)", data / "textures", "textures", 0)):
        model = _generator(model_task)
        if model is None:
            print(f"no shipped {model_task} model: skipped")
            continue
        run = run_factory(model)
        ref_files = sorted(ref_dir.rglob("*.png"))  # digits sit in one sub-folder per class
        keep = np.random.default_rng(0).permutation(len(ref_files))[:REFERENCE_MAX]
        ref_files = [ref_files[i] for i in sorted(keep)]
        ref = extractor.extract_files(ref_files)
        samples: list[np.ndarray] = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(n):
                values: dict[str, Any] = {"seed": i, "width": 32 if classes else 48, "height": 32 if classes else 48}
                if classes:
                    values["class_name"] = str(i % classes)
                spec = run.registry.tasks["generate"]
                params = make_params(spec.params, values)
                request = TaskRequest(task="generate", params=params, model=model, device="cpu")
                result = run_task(request, run.registry)
                Image.fromarray(result.image[..., :3]).save(Path(tmp) / f"{i:04d}.png")
                samples.append(result.image[..., :3])
            feats = extractor.extract_files(list_images(tmp))
        ref_stats = Statistics.from_features(ref.pool, None)
        got = compare(ref_stats, Statistics.from_features(feats.pool, None))
        half = len(ref.pool) // 2
        mixed = ref.pool[np.random.default_rng(1).permutation(len(ref.pool))]  # files are sorted by class
        halves = [Statistics.from_features(part, None) for part in (mixed[:half], mixed[half:])]
        floor = compare(*halves)
        row: Row = {"case": label, "model": model, "n": n, "n_ref": len(ref_files), "fid": got["fid"],
                    "kid": got["kid"], "floor_fid": floor["fid"], "floor_kid": floor["kid"]}
        if classes:
            row["nearest_class_mean_accuracy"] = class_accuracy(ref_dir, samples, classes)
        rows.append(row)
        print(rows[-1], flush=True)
    return rows


def class_accuracy(ref_dir: Path, samples: list[np.ndarray], classes: int) -> float:
    """Share of samples (sample i asked for class i % classes) nearest to their class's mean training image:
    a cheap check that the class conditioning works (chance: 1 / classes)."""
    def grey(a: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(a).convert("L").resize((32, 32)), np.float32).ravel()

    means = np.stack([np.mean([grey(np.asarray(Image.open(f).convert("RGB"))) for f in sorted((ref_dir / str(c))
                      .glob("*.png"))], axis=0) for c in range(classes)])
    hits = [int(np.argmin(((means - grey(s)) ** 2).sum(1)) == i % classes) for i, s in enumerate(samples)]
    return float(np.mean(hits))


def record_evaluation(rows: list[Row], gen_rows: list[Row], model: str, size: int, n_photos: int) -> None:
    """Put the figures into each evaluated shipped model's provenance.json (models elsewhere: skipped)."""
    by = "benchmarks/quality.py (see benchmarks/RESULTS.md)"
    updates: list[tuple[Path, dict[str, Any]]] = []
    if rows:
        table = {r["case"]: {k: [round(v[0], 2), round(v[1], 4)] for k, v in r.items()
                             if isinstance(v, tuple)} for r in rows}
        updates.append((Path(model), {"by": by, "held_out": f"{n_photos} MATE nature photos, centre {size}x{size} "
                                      "crops", "psnr_db_ssim": table}))
    for g in gen_rows:
        updates.append((Path(g["model"]), {"by": by, **{k: v for k, v in g.items() if k not in ("case", "model")}}))
    for folder, evaluation in updates:
        path = folder / "provenance.json"
        if folder.resolve().parent != SHIPPED_MODELS.resolve() or not path.is_file():
            continue
        provenance = json.loads(path.read_text())
        provenance["evaluation"] = evaluation
        tmp = path.with_suffix(".json.partial")
        tmp.write_text(json.dumps(provenance, indent=2) + "\n")
        tmp.replace(path)


def _generator(kind: str) -> str | None:
    """The shipped generate model whose folder name names `kind` (digits, textures)."""
    from diffedit.models_registry import find_models

    for entry in find_models():
        if entry.serves("generate") and kind in entry.name:
            return str(entry.path)
    return None


def markdown(rows: list[Row], gen_rows: list[Row], steps: list[int], size: int, n_photos: int, seconds: float,
             model: str, ensemble: bool = False) -> str:
    columns = [f"model {k} step" for k in steps] + ([ENSEMBLE] if ensemble else [])
    lines = [f"### Shipped models against classical baselines ({time.strftime('%Y-%m-%d')}, "
             f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {seconds:.0f} s)", "",
             f"Repair model `{Path(model).name}` on {n_photos} held-out photos (centre {size}x{size} crops of "
             "MATE's nature backgrounds, never trained on). PSNR dB / SSIM; inpainting PSNR inside the hole.", "",
             *([] if rows else ["(restoration not run)", ""]),
             "| case | baseline | blind non-local means (estimated sigma) | "
             + " | ".join([f"model, {k} step{'s' if k > 1 else ''}" for k in steps]
                          + ([f"model, {steps[0]} step{'s' if steps[0] > 1 else ''}, self-ensemble (8 orientations)"]
                             if ensemble else [])) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for r in rows:
        base = r[r["baseline"]]
        cells = [f"{r['baseline']} {base[0]:.2f} / {base[1]:.3f}"]
        extra = r.get("blind non-local means")
        cells.append(f"{extra[0]:.2f} / {extra[1]:.3f}" if extra else "")
        for key in columns:
            if key not in r:
                cells.append("")
                continue
            m = r[key]
            mark = " **better**" if m[0] > base[0] + 0.05 else (" (equal)" if m[0] > base[0] - 0.05 else "")
            cells.append(f"{m[0]:.2f} / {m[1]:.3f}{mark}")
        lines.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    if gen_rows:
        lines += ["", "| generator | samples | FID | KID | FID, half vs half of the training set | KID, halves |",
                  "|---|---|---|---|---|---|"]
        for g in gen_rows:
            lines.append(f"| {g['case']} | {g['n']} vs {g['n_ref']} | {g['fid']:.1f} | {g['kid']:.4f} | "
                         f"{g['floor_fid']:.1f} | {g['floor_kid']:.4f} |")
        lines += ["", "The floor compares two random halves of the reference set: what a perfect generator would score "
                  "at about this sample size."]
        lines += [f"{g['case']}: a nearest-class-mean classifier (the mean training image of each class) names the "
                  f"requested class in {g['nearest_class_mean_accuracy']:.0%} of {g['n']} samples."
                  for g in gen_rows if "nearest_class_mean_accuracy" in g]
    return "\n".join(lines) + "\n"


def write_results(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n## Quality of the shipped models (benchmarks/quality.py)\n\n" + block + "\n"
    tmp = RESULTS.with_suffix(".md.partial")
    tmp.write_text(new)
    tmp.replace(RESULTS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="the folder scripts/photo_data.py built")
    p.add_argument("--model", default=None, help="repair model (default: the default restore model)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, nargs="+", default=[1, 4])
    p.add_argument("--photos", type=int, default=0, help="use only the first N held-out photos (0: all)")
    p.add_argument("--samples", type=int, default=200, help="generator samples for FID/KID")
    p.add_argument("--skip-generators", action="store_true")
    p.add_argument("--skip-restoration", action="store_true")
    p.add_argument("--ensemble", action="store_true", help="also the self-ensemble of the first step count (8x)")
    p.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md and the models' provenance")
    args = p.parse_args()
    model = args.model or default_model_for("restore")
    if model is None:
        raise SystemExit("no restore model: pass --model or install the shipped models")
    photos = sorted((args.data / "heldout").glob("*.png"))[: args.photos or None]
    start = time.perf_counter()
    rows = [] if args.skip_restoration else restoration_rows(photos, args.size, args.steps, Runner(model),
                                                                args.ensemble)
    gen_rows = [] if args.skip_generators else generator_rows(args.data, Runner, args.samples)
    text = markdown(rows, gen_rows, args.steps, args.size, len(photos), time.perf_counter() - start, model,
                    args.ensemble)
    print(text)
    if args.write:
        write_results(text)
        record_evaluation(rows, gen_rows, model, args.size, len(photos))


if __name__ == "__main__":
    main()
