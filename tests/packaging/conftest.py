"""A tiny random restore model and the example plugin's wheel, built once per session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "plugins" / "example-sharpen"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder holding one tiny random `restore` checkpoint (as DIFFEDIT_MODEL_PATH would name)."""
    from diffedit.diffusion.checkpoints import save_checkpoint
    from diffedit.diffusion.models import build

    root = tmp_path_factory.mktemp("models")
    save_checkpoint(root / "tiny-restore", build("restore", preset="tiny", seed=1, start="degraded"))
    return root


@pytest.fixture(scope="session")
def sharpen_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin's wheel, built with `pip wheel --no-deps` (offline: no build isolation)."""
    out = tmp_path_factory.mktemp("wheels")
    build_dir = tmp_path_factory.mktemp("example-src") / "example-sharpen"
    import shutil

    shutil.copytree(EXAMPLE, build_dir, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(build_dir)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"pip wheel failed: {done.stderr.strip()[-300:]}")
    (wheel,) = out.glob("*.whl")
    return wheel
