"""Where models are found: the model folders from settings and the models shipped with DiffEdit.

Lists checkpoint folders by reading only their `diffedit.json` manifests (no torch), so the task
panel can show them instantly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from diffedit.settings import Settings

MANIFEST = "diffedit.json"
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "resources" / "models"


@dataclass
class ModelEntry:
    path: Path
    task: str
    name: str
    description: str = ""
    default: bool = False
    tasks: list[str] = field(default_factory=list)  # every task it serves, the main one first

    def serves(self, task: str) -> bool:
        return task in (self.tasks or [self.task])


def model_folders(settings: Settings | None = None) -> list[Path]:
    settings = settings or Settings.load()
    env = [p for p in os.environ.get("DIFFEDIT_MODEL_PATH", "").split(os.pathsep) if p]
    return [Path(p) for p in [*env, *settings.model_folders]] + [SHIPPED_MODELS]


def find_models(folders: list[Path] | None = None) -> list[ModelEntry]:
    """Checkpoint folders directly inside each model folder (or the folder itself)."""
    found: list[ModelEntry] = []
    for folder in folders if folders is not None else model_folders():
        if not folder.is_dir():
            continue
        for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
            manifest = candidate / MANIFEST
            if not manifest.is_file():
                continue
            try:
                data = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            task = str(data.get("task", ""))
            extra = data.get("tasks", [])
            tasks = [task, *[str(t) for t in extra if t != task]] if isinstance(extra, list) else [task]
            found.append(ModelEntry(candidate, task, candidate.name, str(data.get("description", "")),
                                    bool(data.get("default", False)), tasks))
    return found


def default_model_for(task: str, folders: list[Path] | None = None) -> str | None:
    """The model marked default for a task, else the only model for it; None when there is none."""
    models = [m for m in find_models(folders) if m.serves(task)]
    marked = [m for m in models if m.default]
    if marked:
        return str(marked[0].path)
    return str(models[0].path) if len(models) == 1 else None
