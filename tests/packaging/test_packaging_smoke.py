"""The packaging smoke test (slow: a full PyInstaller build, minutes). Run with `-m slow` or DIFFEDIT_RUN_SLOW=1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_packaged_app_builds_and_works(tmp_path: Path) -> None:
    pytest.importorskip("PyInstaller", reason="install the packaging extra: pip install -e .[packaging]")
    out = tmp_path / "smoke.json"
    done = subprocess.run([sys.executable, str(ROOT / "packaging" / "smoke_test.py"), "--dist", str(tmp_path / "dist"),
                           "--json", str(out)], capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads(out.read_text())
    assert {s["name"] for s in summary["steps"] if s["ok"]} == {"version", "selftest", "plugins", "gui"}
    print(done.stdout)
