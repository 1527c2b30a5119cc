"""Build the training and evaluation image sets of the shipped models from openly licensed packages.

    python scripts/photo_data.py --out data/   (needs apt-get download: Debian's mirror)

Writes, with a LICENSES.md that names every image's source, author and license:
- photos/: scikit-image's photos (CC0 / public domain) and KDE Plasma's wallpapers (LGPL-3 or
  CC-BY-SA-4.0 per image, from the plasma-workspace-wallpapers package), each at two sizes (long side
  1024 and 512 px) for scale variety: training data of the repair model;
- heldout/: MATE's nature photos (mate-backgrounds, GPL-2+), never trained on: quality evaluation;
- textures/: 96 px tiles of scikit-image's brick, grass and gravel (CC0): the texture generator;
- digits/0..9/: scikit-learn's load_digits (BSD-3), 8x8 enlarged to 32 px: the digit generator.
Nothing here ships: the folder is rebuilt by this one command (the shipped models' provenance cites it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field", "camera",
                  "immunohistochemistry", "motorcycle_left", "horse")
TEXTURES = ("brick", "grass", "gravel")
PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds")


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")


def _long_side(img: Image.Image, side: int) -> Image.Image:
    scale = side / max(img.size)
    if scale >= 1:
        return img
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)


def skimage_sets(out: Path, licenses: list[str]) -> None:
    from skimage import data

    for name in SKIMAGE_PHOTOS:
        try:
            arr = getattr(data, name)()
        except Exception as exc:  # some need pooch downloads in newer scikit-image: skip them
            print(f"skipped skimage {name}: {exc}")
            continue
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
            continue
        img = Image.fromarray(arr).convert("RGB")
        for side in (1024, 512):
            _save(_long_side(img, side), out / "photos" / f"skimage-{name}-{side}.png")
        licenses.append(f"| photos/skimage-{name}-*.png | scikit-image `data.{name}()` | CC0 / public domain |")
    for name in TEXTURES:
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        tiles = 0
        for y in range(0, img.height - 96 + 1, 48):
            for x in range(0, img.width - 96 + 1, 48):
                _save(img.crop((x, y, x + 96, y + 96)), out / "textures" / f"{name}-{y:03d}-{x:03d}.png")
                tiles += 1
        licenses.append(f"| textures/{name}-*.png ({tiles} tiles) | scikit-image `data.{name}()` | CC0 |")


def digits_set(out: Path, licenses: list[str]) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        arr = np.clip(image * (255 / 16), 0, 255).astype(np.uint8)
        img = Image.fromarray(255 - arr).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC)
        _save(img, out / "digits" / str(label) / f"{i:04d}.png")
    licenses.append("| digits/N/*.png (1797) | scikit-learn `load_digits()` (UCI optical digits) | BSD-3-Clause |")


def _plasma_metadata(folder: Path) -> tuple[str, str]:
    """(authors, license) from a Plasma wallpaper's metadata.json, or its older metadata.desktop."""
    if (folder / "metadata.json").is_file():
        meta = json.loads((folder / "metadata.json").read_text()).get("KPlugin", {})
        return (", ".join(a.get("Name", "") for a in meta.get("Authors", [])),
                meta.get("License", "GPL-2+ (package)"))
    keys = dict(line.split("=", 1) for line in (folder / "metadata.desktop").read_text().splitlines() if "=" in line)
    return keys.get("X-KDE-PluginInfo-Author", ""), keys.get("X-KDE-PluginInfo-License", "GPL-2+ (package)")


def debian_sets(out: Path, licenses: list[str], debs: Path | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="diffedit-photos-"))
    if debs is None:
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=work, check=True)
        debs = work
    root = work / "root"
    for deb in sorted(debs.glob("*.deb")):
        if deb.name.split("_")[0] in PACKAGES:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    plasma = root / "usr/share/wallpapers"
    for folder in sorted(p for p in plasma.iterdir() if p.is_dir()):
        images = sorted((folder / "contents/images").glob("*.*"), key=lambda p: p.stat().st_size)
        if not images:
            continue
        authors, license_name = _plasma_metadata(folder)
        with Image.open(images[-1]) as src:
            img = src.convert("RGB")
        for side in (1024, 512):
            _save(_long_side(img, side), out / "photos" / f"plasma-{folder.name}-{side}.png")
        licenses.append(f"| photos/plasma-{folder.name}-*.png | plasma-workspace-wallpapers: {folder.name} by "
                        f"{authors} | {license_name} |")
    for path in sorted((root / "usr/share/backgrounds/mate/nature").glob("*.jpg")):
        with Image.open(path) as src:
            _save(_long_side(src.convert("RGB"), 768), out / "heldout" / f"mate-{path.stem}.png")
        licenses.append(f"| heldout/mate-{path.stem}.png | mate-backgrounds: nature/{path.name} | GPL-2+ "
                        "(package copyright) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--debs", type=Path, default=None, help="folder with already downloaded .deb files")
    args = parser.parse_args()
    licenses = ["| files | source | license |", "|---|---|---|"]
    skimage_sets(args.out, licenses)
    digits_set(args.out, licenses)
    debian_sets(args.out, licenses, args.debs)
    (args.out / "LICENSES.md").write_text("# Images and their licenses\n\n" + "\n".join(licenses) + "\n")
    print(f"wrote {args.out}: " + ", ".join(f"{d.name} {sum(1 for _ in d.rglob('*.png'))}"
                                            for d in sorted(args.out.iterdir()) if d.is_dir()))


if __name__ == "__main__":
    main()
