"""Smoke test of the packaged app: build it (or take a built one), then check it works as shipped.

    python packaging/smoke_test.py [--app DIST/DiffEdit] [--dist DIR] [--keep] [--json OUT]

Steps: build with PyInstaller into a temporary folder (timed), measure the app, run `DiffEdit --selftest`
(with the shipped model; with none shipped it must fail with exit 1, and then a tiny random model is
given with --model), install the example plugin's wheel with `DiffEdit plugins install`, check it loads
and runs, refuse a compiled wheel, uninstall it, and start the GUI under Xvfb until its window appears.
Prints one line per step and a summary with the build time and the app size; exits 1 if a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import build as builder  # noqa: E402  (packaging/build.py)

EXAMPLE = ROOT / "plugins" / "example-sharpen"
SAMPLE = ROOT / "resources" / "samples" / "coffee.png"
WINDOW_TIMEOUT_S = 240


class SmokeError(RuntimeError):
    pass


def run_app(exe: Path, *args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout)


def tiny_model(folder: Path) -> Path:
    """A tiny random restore checkpoint, made with this (non-frozen) DiffEdit."""
    code = ("import sys\nfrom diffedit.diffusion.models import build\n"
            "from diffedit.diffusion.checkpoints import save_checkpoint\n"
            "save_checkpoint(sys.argv[1], build('restore', preset='tiny', seed=1, start='degraded'))\n")
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, timeout=600)
    return folder


def example_wheel(out: Path) -> Path:
    src = out / "example-sharpen"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, timeout=600)
    return next(out.glob("diffedit_sharpen-*.whl"))


def shipped_models(app: Path) -> list[Path]:
    models = next(iter(app.rglob("resources/models")), None)
    return sorted(p.parent for p in models.rglob("diffedit.json")) if models else []


def check_selftest(exe: Path, app: Path, env: dict[str, str], tmp: Path) -> str:
    done = run_app(exe, "--selftest", env=env)
    shipped = shipped_models(app)
    report = done.stdout.strip()
    if shipped:
        if done.returncode != 0:
            raise SmokeError(f"self-test failed with the shipped models:\n{report}\n{done.stderr[-2000:]}")
        return f"passed with {len(shipped)} shipped model(s)\n{report}"
    if done.returncode != 1 or "no shipped model found" not in report:
        raise SmokeError(f"with no shipped model the self-test must fail clearly (exit 1); got "
                         f"{done.returncode}:\n{report}\n{done.stderr[-2000:]}")
    model = tiny_model(tmp / "tiny-restore")
    done = run_app(exe, "--selftest", "--model", str(model), env=env)
    if done.returncode != 0:
        raise SmokeError(f"self-test with a tiny model failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    return f"no shipped model: failed as it must (exit 1); with a tiny model passed\n{done.stdout.strip()}"


def check_plugins(exe: Path, env: dict[str, str], tmp: Path) -> str:
    wheel = example_wheel(tmp / "wheels")
    done = run_app(exe, "plugins", "install", str(wheel), env=env, timeout=120)
    if done.returncode != 0:
        raise SmokeError(f"plugins install failed: {done.stderr.strip()}")
    listed = {r["name"]: r for r in json.loads(run_app(exe, "plugins", "list", "--json", env=env).stdout)}
    if listed.get("sharpen", {}).get("status") != "loaded":
        raise SmokeError(f"the installed plugin did not load: {listed.get('sharpen')}")
    out = tmp / "sharpened.png"
    done = run_app(exe, "run", "sharpen", "--image", str(SAMPLE), "--out", str(out), "--quiet", env=env)
    if done.returncode != 0 or not out.is_file():
        raise SmokeError(f"running the installed plugin's task failed: {done.stderr.strip()[-1000:]}")
    compiled = tmp / "wheels" / "fastblur-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    shutil.copy(wheel, compiled)
    refused = run_app(exe, "plugins", "install", str(compiled), env=env)
    if refused.returncode != 1 or "compiled code" not in refused.stderr:
        raise SmokeError(f"a compiled wheel was not refused: {refused.returncode} {refused.stderr.strip()}")
    done = run_app(exe, "plugins", "uninstall", "sharpen", env=env)
    if done.returncode != 0:
        raise SmokeError(f"plugins uninstall failed: {done.stderr.strip()}")
    return "wheel installed, loaded and ran 'sharpen'; compiled wheel refused; uninstalled"


def check_gui(exe: Path, env: dict[str, str]) -> str:
    """Start the editor on a fresh Xvfb display; wait until a visible window titled DiffEdit exists."""
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        raise SmokeError("Xvfb and xdotool are needed for the GUI check (apt-get install xvfb xdotool)")
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    display = ":" + os.read(read_fd, 16).decode().strip()  # keep read_fd open: Xvfb may write the newline later
    gui_env = {**env, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    start = time.perf_counter()
    app = subprocess.Popen([str(exe), str(SAMPLE)], env=gui_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while time.perf_counter() - start < WINDOW_TIMEOUT_S:
            if app.poll() is not None:
                raise SmokeError(f"the editor exited ({app.returncode}) before showing a window: "
                                 f"{app.stdout.read().decode(errors='replace')[-2000:] if app.stdout else ''}")
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "DiffEdit"], env=gui_env,
                                   capture_output=True, text=True)
            if found.stdout.strip():
                seconds = time.perf_counter() - start
                title = subprocess.run(["xdotool", "getwindowname", found.stdout.split()[0]], env=gui_env,
                                       capture_output=True, text=True).stdout.strip()
                return f"window '{title}' appeared after {seconds:.1f} s"
            time.sleep(0.5)
        raise SmokeError(f"no DiffEdit window within {WINDOW_TIMEOUT_S} s")
    finally:
        app.terminate()
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            app.kill()
        xvfb.terminate()
        xvfb.wait(20)
        os.close(read_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the packaged DiffEdit and check that it works.")
    parser.add_argument("--app", type=Path, help="an already built app folder (skips the build)")
    parser.add_argument("--dist", type=Path, help="build here (default: a temporary folder)")
    parser.add_argument("--cpu-only", action="store_true", help="build without CUDA libraries")
    parser.add_argument("--keep", action="store_true", help="keep the temporary build folder")
    parser.add_argument("--json", type=Path, help="write the figures and step results as JSON here")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="diffedit-smoke-"))
    summary: dict[str, object] = {"python": sys.version.split()[0]}
    steps: list[tuple[str, bool, str]] = []

    def step(name: str, fn: Callable[[], str]) -> bool:
        start = time.perf_counter()
        try:
            detail, ok = fn(), True
        except (SmokeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            detail, ok = str(exc), False
        detail += f" [{time.perf_counter() - start:.0f} s]"
        steps.append((name, ok, detail))
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        return ok

    try:
        app = args.app
        if app is None:
            dist = args.dist or tmp / "dist"
            start = time.perf_counter()
            app = builder.build(dist, dist.parent / "build", cpu_only=args.cpu_only)
            summary["build_seconds"] = round(time.perf_counter() - start)
        app = app.resolve()
        exe = app / ("DiffEdit.exe" if sys.platform == "win32" else "DiffEdit")
        summary["app"] = str(app)
        summary["app_mb"] = round(builder.folder_size(app) / 1e6)
        internal = app / "_internal"
        cuda = [p for p in internal.rglob("*") if p.is_file() and not p.is_symlink()
                and ("nvidia" in p.parts or "cuda" in p.name or "cudnn" in p.name or "nccl" in p.name
                     or "cublas" in p.name or "nvshmem" in p.name or "nvrtc" in p.name)]
        summary["cuda_libs_mb"] = round(sum(p.stat().st_size for p in cuda) / 1e6)
        torch_dir = internal / "torch"
        summary["torch_mb"] = round(builder.folder_size(torch_dir) / 1e6) if torch_dir.is_dir() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DIFFEDIT_"))}
        env.update(DIFFEDIT_CONFIG_DIR=str(tmp / "config"), QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1")
        step("version", lambda: run_app(exe, "--version", env=env, timeout=60).stdout.strip() or "no output")
        step("selftest", lambda: check_selftest(exe, app, env, tmp))
        step("plugins", lambda: check_plugins(exe, env, tmp))
        step("gui", lambda: check_gui(exe, env))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    summary["steps"] = [{"name": n, "ok": ok, "detail": d} for n, ok, d in steps]
    print(f"summary: build {summary.get('build_seconds', 'skipped')} s; app {summary.get('app_mb')} MB "
          f"(torch {summary.get('torch_mb')} MB, CUDA libraries {summary.get('cuda_libs_mb')} MB: a CPU-only "
          f"bundle would be about {summary.get('app_mb', 0) - summary.get('cuda_libs_mb', 0)} MB)")  # type: ignore[operator]
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if steps and all(ok for _n, ok, _d in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
