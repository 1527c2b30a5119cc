"""pytest fixtures for plugin authors, shipped through the `pytest11` entry point.

Installed with DiffEdit, so a plugin's own tests can use them without any set-up:

    def test_my_task(diffedit_plugin_host, make_task_request):
        host = diffedit_plugin_host(my_plugin)
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from diffedit.plugins import PluginHost
from diffedit.settings import Settings
from diffedit.tasks.base import TaskRequest


@pytest.fixture
def diffedit_plugin_host(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., PluginHost]]:
    """A factory: `diffedit_plugin_host(module, ...)` loads exactly these modules as plugins.

    Settings live in a temporary folder, so the user's real settings are never read or changed.
    With `builtins=True` the built-in plugins (samplers, tasks) are discovered first.
    """
    monkeypatch.setenv("DIFFEDIT_CONFIG_DIR", str(tmp_path / "diffedit-config"))

    def make(*modules: ModuleType, builtins: bool = False) -> PluginHost:
        host = PluginHost(settings=Settings(), autoload=False)
        if builtins:
            host.discover()
        for module in modules:
            host.load_module(module, module.__name__, source="test")
        return host

    yield make


@pytest.fixture
def make_task_request() -> Callable[..., TaskRequest]:
    """A factory for TaskRequest with a small opaque grey image when none is given."""

    def make(task: str, params: Any, image: np.ndarray | None = None, mask: np.ndarray | None = None,
             model: str | None = None) -> TaskRequest:
        if image is None:
            image = np.full((32, 32, 4), 128, np.uint8)
            image[..., 3] = 255
        return TaskRequest(task=task, params=params, image=image, mask=mask, model=model, device="cpu")

    return make
