"""Fixtures for the model tests: the loopback server, and settings and user models under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import Served, start_server, write_checkpoint, write_sd_folder


@pytest.fixture
def http_server() -> Iterator[Served]:
    served = Served()
    httpd, thread = start_server(served)
    yield served
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings and the user models folder under tmp_path; no DIFFEDIT_MODEL_PATH from outside."""
    config = tmp_path / "config"
    monkeypatch.setenv("DIFFEDIT_CONFIG_DIR", str(config))
    monkeypatch.delenv("DIFFEDIT_MODELS_DIR", raising=False)
    monkeypatch.delenv("DIFFEDIT_MODEL_PATH", raising=False)
    return config


@pytest.fixture
def checkpoint_maker():
    return write_checkpoint


@pytest.fixture
def sd_maker():
    return write_sd_folder
