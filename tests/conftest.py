"""Shared test set-up: Qt runs headless, and nothing may reach the network."""

import os
import sys
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    """Tests marked `slow` (the packaging smoke test) run only when asked for: `-m slow` or DIFFEDIT_RUN_SLOW=1."""
    if "slow" in (config.getoption("markexpr", "") or "") or os.environ.get("DIFFEDIT_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or DIFFEDIT_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)



@pytest.fixture(autouse=True)
def _restore_sys_path() -> Iterator[None]:
    """Plugins installed by one test (folders put on sys.path, modules imported) must not leak into
    the next: the plugin host would find them again as entry points of another source."""
    before_path, before_modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = before_path
    for name in set(sys.modules) - before_modules:
        if name.split(".")[0] == "diffedit_sharpen":
            del sys.modules[name]


@pytest.fixture(autouse=True)
def _no_shipped_models(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests see only the models they make: the shipped ones (resources/models) would become every
    task's default. Tests of the shipped models themselves are marked `shipped_models`."""
    if request.node.get_closest_marker("shipped_models") is None:
        import diffedit.models_registry as registry

        monkeypatch.setattr(registry, "SHIPPED_MODELS", tmp_path_factory.mktemp("no-shipped-models"))
    yield
