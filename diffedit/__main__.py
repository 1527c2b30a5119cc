"""The `diffedit` command: the editor by default, plus sub-commands for scripts.

Only argparse and the command's own module are imported up front, so `--help` and `--version` stay
instant; torch, diffusers and Qt load only in the commands that need them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from diffedit import __version__

COMMANDS: dict[str, str] = {
    "gui": "open the editor (the default when no command is given)",
    "export": "flatten an image or .ora document to PNG, JPEG or WebP",
    "run": "run a task (generate, inpaint, restore...) on an image from the command line",
    "tasks": "list the tasks the installed plugins offer",
    "samplers": "list the samplers the installed plugins offer",
    "models": "list, add, fetch, remove, create and inspect models (models list, add, fetch...)",
    "plugins": "list, enable, disable, install and uninstall plugins",
    "train": "train a diffusion model on a folder of your images",
    "fid": "compare image sets or checkpoints by FID and KID (offline Inception weights)",
    "quality": "PSNR, SSIM and LPIPS of restored images against references (pairs by file name)",
    "weights": "fetch or list optional weights (Inception, LPIPS's AlexNet) by explicit command",
}


def _top_parser() -> argparse.ArgumentParser:
    epilog = "commands:\n" + "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items())
    epilog += "\n\nRun 'diffedit COMMAND --help' for a command's options."
    parser = argparse.ArgumentParser(
        prog="diffedit",
        description="DiffEdit: an image editor for diffusion models. With no command, opens the editor "
        "with the given files.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"diffedit {__version__}")
    parser.add_argument("--selftest", action="store_true",
                        help="check this install (plugins, a shipped model on the CPU, .ora files, Qt) and exit")
    parser.add_argument("files", nargs="*", help="images or .ora documents to open in the editor")
    return parser


def _gui(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="diffedit gui", description=COMMANDS["gui"])
    parser.add_argument("files", nargs="*", help="images or .ora documents to open")
    args = parser.parse_args(argv)
    from diffedit.qt.app import run_editor

    return run_editor(args.files)


def _one_line(text: str) -> str:
    """Error reasons go to stderr as a single line, whatever a library put in the message."""
    return " ".join(text.splitlines())


def _export(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="diffedit export",
        description="Flatten IN (PNG, JPEG, WebP, TIFF, BMP or .ora) and write OUT in the format its extension names.",
    )
    parser.add_argument("input", metavar="IN")
    parser.add_argument("output", metavar="OUT")
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse images with more pixels than this")
    args = parser.parse_args(argv)
    from diffedit.document.imagefiles import DEFAULT_MAX_PIXELS, ImageFileError, export_format
    from diffedit.document.io import export_image, open_document

    try:
        export_format(args.output)  # a bad OUT name fails before IN is decoded
        opened = open_document(args.input, args.max_pixels or DEFAULT_MAX_PIXELS)
        for note in opened.notes:
            print(f"note: {note}", file=sys.stderr)
        out = export_image(opened.document, args.output)
    except ImageFileError as exc:
        print(f"diffedit export: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:  # writing OUT failed: no permission, no space, a folder in the way...
        reason = _one_line(f"could not write '{args.output}': {exc.strerror or exc}")
        print(f"diffedit export: error: {reason}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({opened.document.width}x{opened.document.height})")
    return 0


def _lazy(module: str, func: str) -> Callable[[Sequence[str]], int]:
    """A handler that imports its command module only when that command runs."""

    def handler(argv: Sequence[str]) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), func)(argv))

    return handler


HANDLERS: dict[str, Callable[[Sequence[str]], int]] = {
    "gui": _gui,
    "export": _export,
    "run": _lazy("diffedit.commands.run", "main"),
    "tasks": _lazy("diffedit.commands.plugins", "tasks_main"),
    "samplers": _lazy("diffedit.commands.plugins", "samplers_main"),
    "models": _lazy("diffedit.commands.models", "main"),
    "plugins": _lazy("diffedit.commands.plugins", "plugins_main"),
    "train": _lazy("diffedit.commands.train", "main"),
    "fid": _lazy("diffedit.commands.fid", "main"),
    "quality": _lazy("diffedit.commands.quality", "main"),
    "weights": _lazy("diffedit.commands.weights", "main"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in HANDLERS:
        return HANDLERS[args[0]](args[1:])
    if args and args[0] == "--selftest":  # its own options (--model DIR) follow it
        from diffedit.selftest import main as selftest_main

        return selftest_main(args[1:])
    top = _top_parser().parse_args(args)
    return _gui(top.files)


if __name__ == "__main__":
    sys.exit(main())
