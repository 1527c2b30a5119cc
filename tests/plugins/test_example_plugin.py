"""The example third-party plugin: installed with pip (into a target folder) and from a plugin folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "plugins" / "example-sharpen"


def _diffedit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffedit", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    px = np.zeros((40, 48, 3), np.uint8)
    px[:, 24:] = 200
    px[:, :24] = 40
    px = np.clip(px.astype(int) + rng.integers(-3, 4, px.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(px).save(path)
    return path


def _check_sharpened(photo: Path, out: Path) -> None:
    before = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    after_img = Image.open(out)
    after = np.asarray(after_img.convert("RGB")).astype(int)
    assert after[:, 25].mean() > before[:, 25].mean() + 10  # edge overshoot: sharper
    assert "Task: sharpen" in after_img.info["parameters"]
    assert json.loads(after_img.info["diffedit"])["layers"][0]["record"]["params"]["amount"] == 2.0


def test_pip_installed_plugin_is_discovered_listed_and_run(tmp_path: Path, photo: Path) -> None:
    target = tmp_path / "site"
    # built from a copy: setuptools writes build/ and an .egg-info beside the sources, and an .egg-info in
    # the checkout (on sys.path through the example's conftest) made the plugin look pip-installed to
    # every later test in the same process
    source = shutil.copytree(EXAMPLE, tmp_path / "example-sharpen",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": str(target), "DIFFEDIT_CONFIG_DIR": str(tmp_path / "cfg")}
    listed = _diffedit("plugins", "list", "--json", env=env)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["sharpen"]["source"] == "entry point" and rows["sharpen"]["status"] == "loaded"
    assert rows["sharpen"]["version"] == "0.1.0" and "task:sharpen" in rows["sharpen"]["registered"]
    out = tmp_path / "sharp.png"
    run = _diffedit("run", "sharpen", "--image", str(photo), "--out", str(out), "--amount", "2", "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    _check_sharpened(photo, out)


def test_plugin_from_a_plugin_folder(tmp_path: Path, photo: Path) -> None:
    env = {"DIFFEDIT_PLUGIN_PATH": str(EXAMPLE), "DIFFEDIT_CONFIG_DIR": str(tmp_path / "cfg")}
    rows = {r["name"]: r for r in json.loads(_diffedit("plugins", "list", "--json", env=env).stdout)}
    assert rows["diffedit_sharpen"]["source"] == "folder" and rows["diffedit_sharpen"]["status"] == "loaded"
    out = tmp_path / "sharp.png"
    run = _diffedit("run", "sharpen", "--image", str(photo), "--out", str(out), "--amount", "2", "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    _check_sharpened(photo, out)


def test_bad_run_input_exits_with_one_line_and_no_output(tmp_path: Path) -> None:
    env = {"DIFFEDIT_PLUGIN_PATH": str(EXAMPLE), "DIFFEDIT_CONFIG_DIR": str(tmp_path / "cfg")}
    out = tmp_path / "never.png"
    missing = _diffedit("run", "sharpen", "--image", str(tmp_path / "nope.png"), "--out", str(out), env=env)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "does not exist" in missing.stderr and not out.exists()
    bad = _diffedit("run", "sharpen", "--out", str(out), env=env)
    assert bad.returncode == 1 and "needs an input image" in bad.stderr and not out.exists()
    wrong = _diffedit("run", "sharpen", "--image", "x.png", "--out", str(out), "--amount", "99", env=env)
    assert wrong.returncode == 1 and "amount must be at most 5.0" in wrong.stderr
