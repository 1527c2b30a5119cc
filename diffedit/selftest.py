"""`diffedit --selftest` (and `DiffEdit --selftest` in the packaged app): a quick check that an install works.

Loads every plugin, runs one shipped model on a small image on the CPU through the same task runner
`diffedit run` uses, saves and reopens an `.ora`, renders text with Qt offscreen, prints a short report
and exits 0 (1 when a check failed). Heavy modules are imported only here, when the self-test runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Tasks whose shipped model the self-test runs, in order of preference (the first one found is used).
SELFTEST_TASKS = ("restore", "super-resolve", "generate")
SELFTEST_STEPS = 3
IMAGE_SIZE = 32


class SelfTestError(RuntimeError):
    """A check failed; the message says what and, where it can, what to do."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def run(self, name: str, fn: Callable[[], str]) -> bool:
        start = time.perf_counter()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # every failure becomes a line of the report, never a traceback
            detail, ok = f"{type(exc).__name__}: {' '.join(str(exc).split())}", False
        self.checks.append(Check(name, ok, detail, time.perf_counter() - start))
        return ok

    def text(self) -> str:
        lines = [f"{'ok  ' if c.ok else 'FAIL'} {c.name:<8} {c.detail} ({c.seconds:.1f} s)" for c in self.checks]
        lines.append("self-test passed" if self.ok else "self-test FAILED")
        return "\n".join(lines)


def _environment() -> str:
    from diffedit import __version__

    frozen = "packaged app" if getattr(sys, "frozen", False) else "Python install"
    return f"DiffEdit {__version__} ({frozen}, Python {sys.version.split()[0]}, {sys.platform})"


def check_plugins(host: Any) -> str:
    host.discover()
    records = host.list_plugins()
    builtin = [r for r in records if r.source == "built-in"]
    broken = [r for r in records if r.status in ("failed", "incompatible")]
    if not builtin:
        raise SelfTestError("no built-in plugins were found (the 'diffedit.plugins' entry points are missing)")
    if broken:
        names = "; ".join(f"{r.name}: {r.error.strip().splitlines()[-1] if r.error else r.status}" for r in broken)
        raise SelfTestError(f"{len(broken)} plugin(s) did not load: {names}")
    others = len(records) - len(builtin)
    tasks = ", ".join(sorted(host.registry.tasks))
    return f"{len(builtin)} built-in + {others} other plugin(s) loaded; tasks: {tasks}"


def _model_task(folder: str) -> str:
    manifest = Path(folder) / "diffedit.json"
    try:
        return str(json.loads(manifest.read_text()).get("task", ""))
    except (OSError, ValueError) as exc:
        raise SelfTestError(f"'{folder}' is not a DiffEdit checkpoint folder (no readable diffedit.json)") from exc


def find_model(model: str | None) -> tuple[str, str]:
    """(task, checkpoint folder): the given one, else the shipped default for the first task that has one."""
    if model:
        return _model_task(model), model
    from diffedit.models_registry import SHIPPED_MODELS, default_model_for

    for task in SELFTEST_TASKS:
        found = default_model_for(task)
        if found:
            return task, found
    raise SelfTestError(f"no shipped model found: none for {', '.join(SELFTEST_TASKS)} in {SHIPPED_MODELS} "
                        f"or the model folders (DIFFEDIT_MODEL_PATH, settings); the package is incomplete. "
                        f"Give one with --model DIR to check the rest")


def _test_image() -> Any:
    import numpy as np

    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    px = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 4), np.uint8)
    px[..., 0] = x * 255 // (IMAGE_SIZE - 1)
    px[..., 1] = y * 255 // (IMAGE_SIZE - 1)
    px[8:24, 8:24, 2] = 200
    px[..., 3] = 255
    return px


def run_model(registry: Any, task: str, model: str) -> Any:
    """One run of `task` with `model` on the CPU, through `run_task` as `diffedit run` calls it."""
    from diffedit.tasks.base import RunContext, TaskRequest
    from diffedit.tasks.params import make_params
    from diffedit.tasks.runner import run_task

    spec = registry.tasks.get(task)
    if spec is None:
        raise SelfTestError(f"the model is for task '{task}', which no loaded plugin provides")
    image = _test_image() if "image" in spec.inputs else None
    values: dict[str, Any] = {"steps": SELFTEST_STEPS, "seed": 0}
    if task == "generate":
        values.update(width=IMAGE_SIZE, height=IMAGE_SIZE)
    params = make_params(spec.params, values)
    request = TaskRequest(task=task, params=params, model=model, image=image, device="cpu", precision="fp32")
    return run_task(request, registry, RunContext(preview_every=0)), image


def check_model(registry: Any, model: str | None, state: dict[str, Any]) -> str:
    import numpy as np

    task, folder = find_model(model)
    result, image = run_model(registry, task, folder)
    if result.image is None or result.image.ndim != 3 or result.image.shape[2] != 4:
        raise SelfTestError(f"task '{task}' returned no RGBA image")
    if not np.isfinite(result.image.astype(np.float32)).all():
        raise SelfTestError("the result holds non-finite values")
    state["result"], state["image"] = result, image
    h, w = result.image.shape[:2]
    from diffedit.diffusion.devices import pick_device

    return (f"{task} with {Path(folder).name}: {SELFTEST_STEPS} steps on the CPU -> {w}x{h}; "
            f"device 'auto' here: {pick_device('auto')}")


def check_ora(state: dict[str, Any]) -> str:
    import numpy as np

    from diffedit.document.document import Document
    from diffedit.document.io import open_document, save_document

    layers = [p for p in (state.get("image"), getattr(state.get("result"), "image", None)) if p is not None]
    if not layers:
        layers = [_test_image()]
    h = max(p.shape[0] for p in layers)
    w = max(p.shape[1] for p in layers)
    doc = Document(w, h, name="selftest")
    for i, pixels in enumerate(layers):
        doc.add_raster(pixels, f"layer {i + 1}")
    expected = doc.composite()
    with tempfile.TemporaryDirectory(prefix="diffedit-selftest-") as tmp:
        path = save_document(doc, Path(tmp) / "selftest.ora")
        size = path.stat().st_size
        reopened = open_document(path).document
        if len(reopened.layers) != len(layers):
            raise SelfTestError(f"saved {len(layers)} layers, read back {len(reopened.layers)}")
        if not np.array_equal(reopened.composite(), expected):
            raise SelfTestError("the reopened document's pixels differ from what was saved")
    return f"{len(layers)} layer(s) saved and reopened identically ({size} bytes)"


def check_qt() -> str:
    """Qt's offscreen platform starts and text renders (with the bundled font on bare systems)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from diffedit.qt.fonts import render_text_check

    return render_text_check()


def run_selftest(model: str | None = None, out: Any = None) -> int:
    from diffedit.plugins import PluginHost

    out = out or sys.stdout
    print(_environment(), file=out)
    report = Report()
    host = PluginHost()
    state: dict[str, Any] = {}
    plugins_ok = report.run("plugins", lambda: check_plugins(host))
    if plugins_ok:
        report.run("model", lambda: check_model(host.registry, model, state))
    report.run("ora", lambda: check_ora(state))
    report.run("qt", check_qt)
    print(report.text(), file=out)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffedit --selftest", description="Check that this install works.")
    parser.add_argument("--model", default=os.environ.get("DIFFEDIT_SELFTEST_MODEL") or None,
                        help="checkpoint folder to run (default: the shipped default model)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        import torch

        torch.set_num_threads(max(1, args.threads))
    except ImportError as exc:
        print(f"self-test FAILED: torch cannot be imported: {exc}", file=sys.stderr)
        return 1
    return run_selftest(args.model)
