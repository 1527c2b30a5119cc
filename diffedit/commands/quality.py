"""`diffedit quality`: full-reference quality of restored images against their references.

    diffedit quality --ref DIR --images DIR [--lpips] [--json]

Each image in --images is paired with the reference of the same file name in --ref (or, failing
that, the same name with another image extension, e.g. out/0001.png with ref/0001.jpg). Prints the
mean PSNR (dB), SSIM and, with --lpips, LPIPS v0.1 'alex' over the pairs; --json prints one object
with the keys psnr, ssim, lpips (only with --lpips) and n. PSNR is averaged per image; a pair of
identical images has infinite PSNR, so the mean is then infinite (null in JSON).
LPIPS needs `diffedit weights fetch lpips` first: nothing is downloaded here. Errors exit 1 with a
one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffedit quality", description="PSNR, SSIM and LPIPS against references.")
    p.add_argument("--ref", metavar="DIR", required=True, help="folder of reference (ground-truth) images")
    p.add_argument("--images", metavar="DIR", required=True, help="folder of restored images, named as --ref")
    p.add_argument("--lpips", action="store_true", help="also LPIPS (needs 'diffedit weights fetch lpips')")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def pair_images(ref: str | Path, images: str | Path) -> list[tuple[Path, Path]]:
    """(reference, image) pairs by file name, then by name without extension; every image needs one."""
    from diffedit.metrics.features import list_images

    refs = list_images(ref)
    by_name = {p.name: p for p in refs}
    by_stem: dict[str, list[Path]] = {}
    for p in refs:
        by_stem.setdefault(p.stem, []).append(p)
    pairs, missing = [], []
    for img in list_images(images):
        match = by_name.get(img.name)
        if match is None:
            candidates = by_stem.get(img.stem, [])
            if len(candidates) > 1:
                raise ValueError(f"{img.name}: several references named {img.stem}.*")
            match = candidates[0] if candidates else None
        if match is None:
            missing.append(img.name)
        else:
            pairs.append((match, img))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"no reference in {ref} for {shown}")
    if not pairs:
        raise ValueError(f"no images in {images}")
    return pairs


def evaluate(ref: str | Path, images: str | Path, with_lpips: bool = False) -> dict[str, Any]:
    """Mean psnr, ssim (and lpips) over the pairs, plus n."""
    import numpy as np

    from diffedit.metrics.features import load_rgb
    from diffedit.metrics.image_quality import lpips_distance, psnr, ssim

    pairs = pair_images(ref, images)
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], **({"lpips": []} if with_lpips else {})}
    for ref_path, img_path in pairs:
        a, b = load_rgb(ref_path), load_rgb(img_path)
        if a.shape != b.shape:
            raise ValueError(f"{img_path.name}: size {b.shape[1]}x{b.shape[0]} differs from the reference's "
                             f"{a.shape[1]}x{a.shape[0]}")
        scores["psnr"].append(psnr(a, b))
        scores["ssim"].append(ssim(a, b))
        if with_lpips:
            scores["lpips"].append(lpips_distance(a, b))
    result: dict[str, Any] = {k: float(np.mean(v)) for k, v in scores.items()}
    result["n"] = len(pairs)
    return result


def _fmt(v: float, digits: int) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else "inf"


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    try:
        for folder in (args.ref, args.images):
            if not Path(folder).is_dir():
                raise FileNotFoundError(f"not a folder: {folder}")
        result = evaluate(args.ref, args.images, args.lpips)
    except KeyboardInterrupt:
        print("diffedit quality: cancelled", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as exc:  # LPIPSUnavailable is a RuntimeError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"diffedit quality: error: {reason}", file=sys.stderr)
        return 1
    if args.json:
        finite = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
        print(json.dumps(finite))
    else:
        line = f"PSNR {_fmt(result['psnr'], 3)} dB  SSIM {_fmt(result['ssim'], 4)}"
        if "lpips" in result:
            line += f"  LPIPS {_fmt(result['lpips'], 4)}"
        print(f"{line}  (n {result['n']})")
    return 0
