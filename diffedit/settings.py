"""User settings shared by the core, the CLI and the editor, kept in one JSON file.

The file lives in the user config folder (DIFFEDIT_CONFIG_DIR overrides it, for tests and portable
installs) and is written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from diffedit.document.atomic import atomic_write_bytes


def config_dir() -> Path:
    env = os.environ.get("DIFFEDIT_CONFIG_DIR")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("diffedit"))


@dataclass
class Settings:
    model_folders: list[str] = field(default_factory=list)
    plugin_folders: list[str] = field(default_factory=list)
    disabled_plugins: list[str] = field(default_factory=list)
    device: str = "auto"
    precision: str = "auto"
    max_image_pixels: int = 100_000_000
    autosave_interval_s: int = 120
    history_memory_mb: int = 512
    show_rulers: bool = True  # the editor's View > Show Rulers

    @classmethod
    def path(cls) -> Path:
        return config_dir() / "settings.json"

    @classmethod
    def load(cls) -> Settings:
        """Read the settings; a missing or damaged file gives the defaults (never an error at start-up)."""
        try:
            data = json.loads(cls.path().read_text())
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known} if isinstance(data, dict) else {}
        try:
            return cls(**values)
        except TypeError:
            return cls()

    def save(self) -> Path:
        return atomic_write_bytes(self.path(), json.dumps(asdict(self), indent=2).encode())
