"""Shared test set-up: Qt runs headless, and nothing may reach the network."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items) -> None:  # type: ignore[no-untyped-def]
    """Tests marked `slow` (the packaging smoke test) run only when asked for: `-m slow` or DIFFEDIT_RUN_SLOW=1."""
    import pytest

    if "slow" in (config.getoption("markexpr", "") or "") or os.environ.get("DIFFEDIT_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or DIFFEDIT_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
