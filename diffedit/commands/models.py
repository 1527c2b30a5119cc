"""`diffedit models`: make a randomly initialised checkpoint folder for a task, or describe one.

    diffedit models new --task inpaint --preset small --out models/inpaint [--seed 0] [--image-size 64]
    diffedit models info models/inpaint [--json] [--verify]

`info` reads only JSON and safetensors headers (no torch); `new` imports torch and diffusers.
Errors exit 1 with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from diffedit.diffusion.models import CONDITIONINGS, PREDICTION_TYPES, PRESETS, STARTS, TASKS

PROG = "diffedit models"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Usage errors become one line on stderr and exit status 1, like every other error here."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Create or describe model checkpoint folders.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    new = commands.add_parser("new", help="write a randomly initialised checkpoint folder for a task",
                              description="Write a randomly initialised checkpoint folder (same seed, same weights).")
    new.add_argument("--task", required=True, choices=TASKS)
    new.add_argument("--preset", default="small", choices=list(PRESETS), help="model size (default: small)")
    new.add_argument("--out", required=True, metavar="DIR", help="the checkpoint folder to create")
    new.add_argument("--seed", type=int, default=0, help="weights initialisation seed (default: 0)")
    new.add_argument("--image-size", type=int, metavar="N", help="training resolution (default: the preset's)")
    new.add_argument("--conditioning", choices=CONDITIONINGS, help="default: the task's")
    new.add_argument("--channels", type=int, metavar="N", help="channels generated (default: 3, 1 for segment)")
    new.add_argument("--condition-channels", type=int, metavar="N", help="channels concatenated to the input")
    new.add_argument("--mask-channel", action=argparse.BooleanOptionalAction, default=None,
                     help="one more input channel for the mask (default: on for inpaint)")
    new.add_argument("--classes", metavar="A,B,...", help="class names for --conditioning class")
    new.add_argument("--num-classes", type=int, metavar="N", help="N classes named 0..N-1 (instead of --classes)")
    new.add_argument("--latent", action="store_true", help="latent diffusion: add a VAE, the UNet runs on latents")
    new.add_argument("--prediction-type", default="epsilon", choices=PREDICTION_TYPES)
    new.add_argument("--beta-schedule", choices=("linear", "scaled_linear", "squaredcos_cap_v2"))
    new.add_argument("--scale-factor", type=int, metavar="N", help="upscaling factor for super-resolve (default 4)")
    new.add_argument("--start", default="noise", choices=STARTS, help="'degraded' for bridge-style restoration")
    new.add_argument("--sampler", default="ddim", help="the checkpoint's default sampler (default: ddim)")
    new.add_argument("--description", default="")
    new.add_argument("--force", action="store_true", help="replace an existing checkpoint folder")
    new.set_defaults(handler=_new)
    info = commands.add_parser("info", help="describe a checkpoint folder", description="Describe a checkpoint folder.")
    info.add_argument("folder", metavar="DIR")
    info.add_argument("--json", action="store_true", help="print the diffedit.json manifest as it is")
    info.add_argument("--verify", action="store_true", help="also check every weights file's SHA-256")
    info.set_defaults(handler=_info)
    return parser


def main(argv: Sequence[str]) -> int:
    """Run `diffedit models ARGV`; returns the exit status (0 ok, 1 error; --help returns 0)."""
    from diffedit.diffusion.checkpoints import CheckpointError

    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as done:  # --help printed
        return int(done.code or 0)
    except _UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    try:
        return int(args.handler(args))
    except (CheckpointError, ValueError, OSError) as exc:
        reason = str(exc)
        if isinstance(exc, OSError) and exc.filename:
            reason = f"{exc.filename}: {exc.strerror or exc}"
        print(f"{PROG}: error: {' '.join(reason.split())}", file=sys.stderr)
        return 1


def _class_names(args: argparse.Namespace) -> list[str]:
    if args.classes and args.num_classes:
        raise ValueError("give --classes or --num-classes, not both")
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise ValueError("--num-classes must be at least 1")
        return [str(i) for i in range(args.num_classes)]
    return [name.strip() for name in (args.classes or "").split(",") if name.strip()]


def _new(args: argparse.Namespace) -> int:
    from diffedit.diffusion.checkpoints import save_checkpoint
    from diffedit.diffusion.models import build

    classes = _class_names(args)
    conditioning = args.conditioning or ("class" if classes else None)
    bundle = build(args.task, conditioning, args.preset, args.image_size, args.channels,
                   condition_channels=args.condition_channels, mask_channel=args.mask_channel, class_names=classes,
                   latent=args.latent, prediction_type=args.prediction_type, beta_schedule=args.beta_schedule,
                   scale_factor=args.scale_factor, start=args.start, seed=args.seed,
                   default_sampler=args.sampler, description=args.description)
    manifest = save_checkpoint(args.out, bundle, overwrite=args.force)
    unet_hash = manifest.made.weights_sha256.get("unet/diffusion_pytorch_model.safetensors", "")
    print(f"wrote {args.out}: {manifest.task} ({manifest.conditioning}), preset {args.preset}, "
          f"{bundle.parameter_count() / 1e6:.2f} M parameters, seed {args.seed}, unet sha256 {unet_hash[:12]}")
    if bundle.text_encoder is not None:
        print(f"note: the text encoder is a random CLIP ({bundle.text_encoder.width} wide); "
              "its prompts mean nothing until it is replaced or trained")
    return 0


def _safetensors_parameters(path: Path) -> int | None:
    """Parameter count from a safetensors header (8-byte length + JSON), without loading tensors."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(size, 100_000_000)))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for name, entry in header.items():
        if name != "__metadata__":
            count = 1
            for dim in entry.get("shape", []):
                count *= int(dim)
            total += count
    return total


def _part_summary(root: Path, name: str, files: list[Path]) -> str:
    params = [_safetensors_parameters(p) if p.suffix == ".safetensors" else None for p in files]
    size = sum(p.stat().st_size for p in files) / 1e6
    known = [n for n in params if n is not None]
    count = f"{sum(known) / 1e6:.2f} M parameters, " if known else ""
    shown = ", ".join(p.relative_to(root).as_posix() for p in files)
    return f"{name:<15} {count}{size:.1f} MB ({shown})"


def _info(args: argparse.Namespace) -> int:
    from diffedit.diffusion.checkpoints import (
        MANIFEST_NAME,
        detect_stable_diffusion,
        inspect_checkpoint,
        verify_hashes,
    )

    root = Path(args.folder)
    pipeline = detect_stable_diffusion(root)
    if pipeline is not None:
        index = root / "model_index.json"
        print(index.read_text(encoding="utf-8").rstrip() if args.json else
              f"{root}: Stable Diffusion pipeline ({pipeline}), not a DiffEdit checkpoint")
        return 0
    manifest, parts = inspect_checkpoint(root)
    if args.verify:
        verify_hashes(manifest, parts)
    if args.json:
        print((root / MANIFEST_NAME).read_text(encoding="utf-8").rstrip())
        return 0
    m, made = manifest, manifest.made
    extra = [f"{m.condition_channels} condition channels"] if m.condition_channels else []
    extra += ["mask channel"] if m.mask_channel else []
    lines = [
        f"{root}",
        f"  task            {m.task}" + (f" (x{m.scale_factor})" if m.scale_factor != 1 else ""),
        f"  conditioning    {m.conditioning}" + (f" ({', '.join(extra)})" if extra else ""),
        f"  image           {m.image_size}x{m.image_size}, {m.channels} channel(s)" + (", latent" if m.latent else ""),
        f"  prediction      {m.prediction_type}, starts from {m.start}, default sampler {m.default_sampler}",
    ]
    if m.class_names:
        shown = ", ".join(m.class_names[:10]) + (", ..." if len(m.class_names) > 10 else "")
        lines.append(f"  classes         {len(m.class_names)}: {shown} (null class {m.null_class})")
    versions = ", ".join(f"{k} {v}" for k, v in made.versions.items())
    lines.append(f"  made            seed {made.seed}, {made.steps} steps, data {made.data or '-'}"
                 + (f"; {versions}" if versions else ""))
    lines.append(f"  {_part_summary(root, 'unet', parts.unet_weights)} [{parts.unet_class}]")
    for sub in (parts.vae_dir, parts.text_dir):
        if sub is not None:
            files = [p for p in sorted(sub.iterdir()) if p.suffix == ".safetensors"]
            lines.append(f"  {_part_summary(root, sub.name, files)}")
    if m.description:
        lines.append(f"  description     {m.description}")
    if args.verify:
        lines.append("  weights         SHA-256 verified")
    print("\n".join(lines))
    return 0
