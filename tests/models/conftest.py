"""Fixtures for the model tests: the loopback server (also as a fake Hugging Face hub), and settings
and user models under tmp_path."""

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
def fake_hub(http_server: Served, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The loopback server as the Hugging Face hub: huggingface_hub's endpoint points at it, offline
    mode (set for every test) is lifted for this test alone, and the user's token is a test one.
    huggingface_hub's own cache of the hub's agent registry goes to a temporary folder."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", http_server.base)
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path_factory.mktemp("hf-home") / "agents.json"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    return http_server


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
