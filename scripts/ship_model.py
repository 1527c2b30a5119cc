"""Copy a trained checkpoint into resources/models/NAME as a shipped default model, with provenance.

    python scripts/ship_model.py --run RUN_DIR --name repair --log RUN.log --license CC-BY-SA-4.0 \
        --command "diffedit train ..." [--default-steps 1] [--checkpoint best]

The folder gets the checkpoint (weights and configs), its `diffedit.json` marked `default` with
license, source and default steps, and `provenance.json`: the exact training command, the data and
its licenses (DATA/LICENSES.md from scripts/photo_data.py), steps, seed, hardware, training time and
the figures of the last validation. Evaluation figures are added by benchmarks/quality.py.
Written to a temporary folder first, then renamed into place.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "resources" / "models"


def training_seconds(log: Path) -> float | None:
    """The elapsed time of the last progress line (tqdm's [MM:SS< or [H:MM:SS<) in a training log."""
    found = re.findall(r"\[(\d+(?::\d+){1,2})<", log.read_text(errors="replace"))
    if not found:
        return None
    parts = [int(p) for p in found[-1].split(":")]
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return float(seconds)


def last_validation(run: Path) -> dict[str, Any]:
    vals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"val_loss"' in line]
    best = min(vals, key=lambda v: v["val_loss"]) if vals else {}
    return {"best_val_loss": best.get("val_loss"), "best_val_step": best.get("step")}


def hardware(recorded: Path | None = None) -> dict[str, Any]:
    """This machine, or the JSON a training machine wrote about itself (a lent GPU, say)."""
    if recorded is not None:
        return json.loads(recorded.read_text())
    import torch

    return {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": 1, "gpu": None}


def halve_weights(folder: Path) -> dict[str, str]:
    """Store every float32 safetensors file of `folder` as float16 (half the download; the loader casts
    to the device's dtype, and the quality benchmark measures the shipped files themselves).

    Returns the new SHA-256 of each file by its path in the folder: the manifest's `weights_sha256`
    must be updated, or the loader rightly refuses the changed files."""
    import torch
    from safetensors.torch import load_file, save_file

    from diffedit.downloads import file_sha256

    digests = {}
    for path in sorted(folder.rglob("*.safetensors")):
        tensors = {k: (v.half() if v.dtype == torch.float32 else v).contiguous() for k, v in load_file(path).items()}
        tmp = path.with_suffix(".tmp")
        save_file(tensors, tmp, metadata={"format": "pt"})
        tmp.replace(path)
        digests[path.relative_to(folder).as_posix()] = file_sha256(path)
    return digests


def ship(args: argparse.Namespace) -> Path:
    run: Path = args.run
    source = run / "best" if args.checkpoint == "best" else Path(args.checkpoint)
    manifest = json.loads((source / "diffedit.json").read_text())
    manifest.update({"default": not args.not_default, "license": args.license, "description": args.description or
                     manifest.get("description", ""),
                     "source": f"trained by DiffEdit on openly licensed images ({args.data_name}); "
                               "see provenance.json"})
    if args.default_steps:
        manifest["default_steps"] = args.default_steps
    data_licenses = (args.data / "LICENSES.md").read_text() if (args.data / "LICENSES.md").is_file() else ""
    provenance = {
        "command": args.command, "data": args.data_name, "data_licenses": data_licenses,
        "rebuild": "python scripts/photo_data.py --out data/ && " + args.command.replace(str(args.data), "data"),
        "steps": manifest.get("made", {}).get("steps"), "seed": manifest.get("made", {}).get("seed"),
        "hardware": hardware(args.hardware), "training_seconds": training_seconds(args.log) if args.log else None,
        **last_validation(run), "evaluation": {},
    }
    target = SHIPPED / args.name
    tmp = SHIPPED / f".{args.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("*.state.pt"))
    if args.half:
        manifest.setdefault("made", {}).setdefault("weights_sha256", {}).update(halve_weights(tmp))
    (tmp / "diffedit.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="the training run's --out folder")
    p.add_argument("--name", required=True, help="folder name under resources/models")
    p.add_argument("--checkpoint", default="best", help="best, or a checkpoint folder of the run")
    p.add_argument("--log", type=Path, default=None, help="the training log (for the training time)")
    p.add_argument("--command", required=True, help="the exact diffedit train command that made it")
    p.add_argument("--data", type=Path, default=Path("data"), help="the data folder (for LICENSES.md)")
    p.add_argument("--data-name", default="", help="what the data is, in words")
    p.add_argument("--license", required=True, help="license of the weights")
    p.add_argument("--default-steps", type=int, default=0)
    p.add_argument("--description", default="")
    p.add_argument("--hardware", type=Path, default=None,
                   help="JSON the training machine wrote about itself (default: this machine)")
    p.add_argument("--half", action="store_true", help="store the weights as float16 (half the size)")
    p.add_argument("--not-default", action="store_true", help="another model is its task's default")
    print(f"shipped {ship(p.parse_args())}")


if __name__ == "__main__":
    main()
