"""`diffedit --selftest`: passes with a (tiny) model, fails clearly without one, keeps --help light."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffedit import models_registry
from diffedit.selftest import run_selftest


@pytest.fixture
def no_shipped_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the models a test names: empty shipped-model and settings folders."""
    monkeypatch.setattr(models_registry, "SHIPPED_MODELS", tmp_path / "shipped")
    monkeypatch.setenv("DIFFEDIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("DIFFEDIT_MODEL_PATH", raising=False)


def test_selftest_passes_with_the_default_model(no_shipped_models: None, tiny_model_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFEDIT_MODEL_PATH", str(tiny_model_dir))
    out = io.StringIO()
    assert run_selftest(out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert "self-test passed" in text
    assert "restore with tiny-restore" in text and "3 steps on the CPU" in text
    assert "saved and reopened identically" in text and "built-in" in text
    assert "FAIL" not in text


def test_selftest_fails_without_a_shipped_model(no_shipped_models: None) -> None:
    out = io.StringIO()
    assert run_selftest(out=out) == 1
    text = out.getvalue()
    assert "FAIL model" in text and "no shipped model found" in text and "self-test FAILED" in text
    assert "ok   ora" in text  # the other checks still ran


def test_selftest_reports_a_bad_model_folder(no_shipped_models: None, tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_selftest(str(tmp_path), out=out) == 1
    assert "not a DiffEdit checkpoint folder" in out.getvalue()


def test_selftest_command_in_a_subprocess(tiny_model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DIFFEDIT_CONFIG_DIR": str(tmp_path / "config"), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-m", "diffedit", "--selftest", "--model",
                           str(tiny_model_dir / "tiny-restore"), "--threads", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("self-test passed")


def test_help_mentions_selftest_without_importing_it() -> None:
    code = ("import contextlib, io, sys\nfrom diffedit.__main__ import main\nbuf = io.StringIO()\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(buf):\n    main(['--help'])\n"
            "assert '--selftest' in buf.getvalue()\n"
            "assert not {'torch', 'PySide6', 'diffedit.selftest'} & set(sys.modules), 'heavy import'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
