"""Build the one-folder app with PyInstaller: `python packaging/build.py [--cpu-only] [--tarball]`.

Writes `dist/DiffEdit/` (and `dist/DiffEdit.app` on macOS) under --dist (default: packaging/dist),
prints the build time and the app's size, and with --tarball also writes
`DiffEdit-VERSION-linux-x86_64.tar.gz` holding the app, the .desktop file, the icons, the AppStream
metainfo and install.sh.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "diffedit.spec"
APP_NAME = "DiffEdit"


def folder_size(path: Path) -> int:
    """Bytes of the files under `path` (symbolic links not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def version() -> str:
    text = (ROOT / "diffedit" / "__init__.py").read_text()
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "0"


def build(dist: Path, work: Path, cpu_only: bool = False, clean: bool = False) -> Path:
    """Run PyInstaller on the spec; returns the app folder."""
    env = dict(os.environ, DIFFEDIT_VERSION=version())
    if cpu_only:
        env["DIFFEDIT_CPU_ONLY"] = "1"
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    if clean:
        cmd.insert(3, "--clean")
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return dist / APP_NAME


def make_tarball(app: Path, out_dir: Path) -> Path:
    """The Linux tarball: the app folder plus what install.sh puts in place."""
    arch = platform.machine() or "x86_64"
    name = f"{APP_NAME}-{version()}-linux-{arch}"
    tarball = out_dir / f"{name}.tar.gz"
    linux = HERE / "linux"
    extras = {
        "install.sh": linux / "install.sh",
        "org.diffedit.DiffEdit.desktop": linux / "org.diffedit.DiffEdit.desktop",
        "org.diffedit.DiffEdit.metainfo.xml": linux / "org.diffedit.DiffEdit.metainfo.xml",
        "org.diffedit.DiffEdit.mime.xml": linux / "org.diffedit.DiffEdit.mime.xml",
        "diffedit.svg": ROOT / "resources" / "icons" / "diffedit.svg",
        "diffedit.png": ROOT / "resources" / "icons" / "diffedit-256.png",
    }
    with tarfile.open(tarball, "w:gz", compresslevel=6) as tar:
        tar.add(app, arcname=f"{name}/{APP_NAME}")
        for arcname, path in extras.items():
            tar.add(path, arcname=f"{name}/{arcname}")
    return tarball


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the DiffEdit one-folder app with PyInstaller.")
    parser.add_argument("--dist", type=Path, default=HERE / "dist", help="output folder (default packaging/dist)")
    parser.add_argument("--work", type=Path, default=None, help="PyInstaller's work folder (default DIST/../build)")
    parser.add_argument("--cpu-only", action="store_true", help="leave out CUDA libraries (use with a CPU torch)")
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's cache first")
    parser.add_argument("--tarball", action="store_true", help="also write the Linux tarball next to the app")
    parser.add_argument("--no-build", action="store_true", help="reuse DIST/DiffEdit (with --tarball)")
    args = parser.parse_args(argv)
    dist = args.dist.resolve()
    work = (args.work or dist.parent / "build").resolve()
    if args.no_build:
        app = dist / APP_NAME
        if not app.is_dir():
            parser.error(f"{app} does not exist; build it first")
    else:
        if (dist / APP_NAME).exists():
            shutil.rmtree(dist / APP_NAME)
        start = time.perf_counter()
        app = build(dist, work, args.cpu_only, args.clean)
        print(f"built {app} in {time.perf_counter() - start:.0f} s")
    print(f"{app}: {folder_size(app) / 1e6:.0f} MB")
    if args.tarball:
        start = time.perf_counter()
        tarball = make_tarball(app, dist)
        print(f"wrote {tarball} ({tarball.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
