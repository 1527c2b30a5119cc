"""`diffedit models`: make, describe and manage model checkpoint folders.

    diffedit models new --task inpaint --preset small --out models/inpaint [--seed 0] [--image-size 64]
    diffedit models info models/inpaint [--json] [--verify]
    diffedit models list [--json] [--hash] [--catalogue]
    diffedit models add PATH [--in-place] [--name NAME]
    diffedit models fetch NAME | URL --sha256 HEX [--name NAME] [--quiet]
    diffedit models remove NAME|PATH [--yes]

`info` and `list` read only JSON and safetensors headers (no torch); `new` imports torch and
diffusers. `fetch` is the only command that goes online (see diffedit.model_manager).
Errors exit 1 with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Callable, Sequence
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
    _manager_commands(commands)
    return parser


def _manager_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lst = commands.add_parser("list", help="list the models in the model folders (task, size, source, license, hash)",
                              description="List the models in the model folders from settings.")
    lst.add_argument("--json", action="store_true", help="one JSON array")
    lst.add_argument("--hash", action="store_true", help="compute the weights SHA-256 where the manifest has none")
    lst.add_argument("--catalogue", action="store_true", help="list the models 'fetch' knows instead")
    lst.set_defaults(handler=_list)
    add = commands.add_parser("add", help="add a folder of models, or import a model folder or file",
                              description="A folder of models is added to the model folders in settings. A model "
                              "(a checkpoint folder, a diffusers Stable Diffusion folder, a .zip of one, or a "
                              "diffedit.json) is copied into the user models folder.")
    add.add_argument("path", metavar="PATH")
    add.add_argument("--in-place", action="store_true", help="list a model folder where it is instead of copying it")
    add.add_argument("--name", help="the imported model's folder name (default: from PATH)")
    add.set_defaults(handler=_add)
    fetch = commands.add_parser("fetch", help="download a catalogue model or a URL (SHA-256 checked, resumable)",
                                description="Download a model into the user models folder: a catalogue name (see "
                                "'models list --catalogue'), or an http(s) URL of a .zip of a model folder with "
                                "--sha256. Resumable: run again after an interruption.")
    fetch.add_argument("source", metavar="NAME|URL")
    fetch.add_argument("--sha256", metavar="HEX", help="the file's full SHA-256 (required with a URL)")
    fetch.add_argument("--name", help="the model's folder name (default: the catalogue name or the file name)")
    fetch.add_argument("--license", default="", help="record this license with a URL download")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(handler=_fetch)
    remove = commands.add_parser("remove", help="delete an imported model, or forget a model folder",
                                 description="Delete a model in the user models folder, or remove a folder from the "
                                 "model folders in settings (its files are kept). Other models are never deleted.")
    remove.add_argument("target", metavar="NAME|PATH")
    remove.add_argument("--yes", action="store_true", help="delete without asking")
    remove.set_defaults(handler=_remove)


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
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (a download resumes when run again)", file=sys.stderr)
        return 130
    except (CheckpointError, ValueError, OSError, RuntimeError) as exc:
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


# ------------------------------------------------------------------------------- the model manager
def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return ""


def _list(args: argparse.Namespace) -> int:
    from diffedit import model_manager as mm

    if args.catalogue:
        items = mm.load_catalogue()
        if args.json:
            print(json.dumps([vars(i) for i in items], indent=2))
            return 0
        for i in items:
            pin = f"sha256 {i.sha256[:12]}" if i.sha256 else f"revision {i.revision or 'not pinned'}"
            print(f"{i.name:<20} {','.join(i.tasks):<14} {_size(i.size):>9}  {i.license:<12} {i.where}  ({pin})")
        return 0
    models = mm.scan(compute_hash=args.hash)
    if args.json:
        print(json.dumps([m.to_json() for m in models], indent=2))
        return 0
    if not models:
        print("no models found; add a folder with 'diffedit models add DIR' or fetch one ('diffedit models fetch')")
        return 0
    print(f"{'NAME':<22} {'TASKS':<18} {'SIZE':>9}  {'SOURCE':<24} {'LICENSE':<12} SHA-256")
    for m in models:
        print(f"{m.name:<22} {','.join(m.tasks) or '-':<18} {_size(m.size):>9}  {m.source[:24]:<24} "
              f"{m.license or '-':<12} {(m.sha256 or '-')[:16]}  {m.path}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from diffedit import model_manager as mm

    path = Path(args.path).expanduser()
    is_model = path.is_dir() and ((path / "diffedit.json").is_file() or (path / "model_index.json").is_file())
    if path.is_file():
        print(f"imported {mm.import_file(path, args.name)}")
    elif is_model and not args.in_place:
        print(f"imported {mm.import_folder(path, args.name)}")
    else:
        folder = mm.add_folder(path)
        count = len([m for m in mm.scan([folder])])
        print(f"added model folder {folder} ({count} model(s))")
    return 0


def _progress(name: str, quiet: bool) -> tuple[Callable[[int, int | None], None], Callable[[], None]]:
    bar = None

    def update(done: int, total: int | None) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=done, desc=name, unit="B", unit_scale=True, file=sys.stderr)
        bar.n = done
        bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return update, close


def _fetch(args: argparse.Namespace) -> int:
    from diffedit import model_manager as mm
    from diffedit.downloads import check_sha256

    warn = lambda text: print(f"note: {text}", file=sys.stderr)  # noqa: E731
    if "://" in args.source:
        if not args.sha256:
            raise ValueError("a URL needs --sha256 HEX (the file's full SHA-256, from a source you trust)")
        update, close = _progress(args.name or args.source.rsplit("/", 1)[-1], args.quiet)
        try:
            path = mm.fetch_url(args.source, check_sha256(args.sha256), args.name, update, license=args.license)
        finally:
            close()
    else:
        item = mm.catalogue_item(args.source)
        if args.sha256:
            raise ValueError("--sha256 goes with a URL; catalogue models carry their own pins")
        if item.source == "hf" and not args.quiet:
            print(f"fetching {item.where} from Hugging Face ({item.license})", file=sys.stderr)
        update, close = _progress(item.name, args.quiet)
        try:
            path = mm.fetch_item(item, args.name, update, warn=warn)
        finally:
            close()
    print(f"fetched {path}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from diffedit import model_manager as mm
    from diffedit.settings import Settings

    settings_folders = Settings.load().model_folders
    if args.target in settings_folders or str(Path(args.target).expanduser().resolve()) in settings_folders:
        print(mm.remove(args.target))
        return 0
    info = mm.find(args.target)
    if info.managed and not args.yes:
        if not sys.stdin.isatty():
            raise ValueError(f"this deletes {info.path}: pass --yes to confirm")
        if input(f"delete {info.path} ({_size(info.size)})? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    print(mm.remove(str(info.path)))
    return 0
