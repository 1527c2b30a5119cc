"""The registry plugins fill through their registrar hooks: tasks, samplers, model loaders, formats."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from diffedit.tasks.base import TaskSpec


class DuplicateNameError(ValueError):
    """Two plugins registered the same name; the second one is refused."""


@dataclass(frozen=True)
class SamplerInfo:
    """A named sampler: a diffusers scheduler class with options. Light: class named by string."""

    name: str
    label: str
    description: str
    scheduler: str  # diffusers class name, e.g. "DDIMScheduler"
    config: dict[str, Any] = field(default_factory=dict)  # overrides applied with from_config
    step_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"eta": 0.0} for DDIM
    evaluations_per_step: int = 1  # Heun and friends evaluate twice per step (see DIFFUSERS_NOTES)
    stochastic: bool = False


@dataclass(frozen=True)
class ModelLoaderInfo:
    """A checkpoint format: `detect(path) -> bool` and `load(path, device, dtype)`, by "module:function"."""

    name: str
    description: str
    detect: str
    load: str


@dataclass(frozen=True)
class FileFormatInfo:
    """A file format a plugin can open/save: extensions and "module:function" readers/writers."""

    name: str
    extensions: tuple[str, ...]
    reader: str = ""
    writer: str = ""


@dataclass(frozen=True)
class ActionInfo:
    """A menu action a plugin offers; the GUI builds the menu entry, the callable gets the document."""

    name: str
    label: str
    menu: str
    callback: str  # "module:function" taking (document) and returning None


class Registry:
    """What all plugins registered. Each `add_*` refuses a name that is already taken."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskSpec] = {}
        self.samplers: dict[str, SamplerInfo] = {}
        self.model_loaders: dict[str, ModelLoaderInfo] = {}
        self.file_formats: dict[str, FileFormatInfo] = {}
        self.actions: dict[str, ActionInfo] = {}
        self.owners: dict[tuple[str, str], str] = {}  # (kind, name) -> plugin name
        self.current_plugin = ""  # set by the plugin manager while a plugin's hook runs
        self._on_add: Callable[[str, str], None] | None = None

    def _add(self, kind: str, table: dict[str, Any], name: str, item: Any) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"a {kind} needs a non-empty name")
        if name in table:
            owner = self.owners.get((kind, name), "?")
            raise DuplicateNameError(f"{kind} '{name}' is already registered by plugin '{owner}'")
        table[name] = item
        self.owners[(kind, name)] = self.current_plugin
        if self._on_add:
            self._on_add(kind, name)

    def add_task(self, spec: TaskSpec) -> None:
        self._add("task", self.tasks, spec.name, spec)

    def add_sampler(self, info: SamplerInfo) -> None:
        self._add("sampler", self.samplers, info.name, info)

    def add_model_loader(self, info: ModelLoaderInfo) -> None:
        self._add("model loader", self.model_loaders, info.name, info)

    def add_file_format(self, info: FileFormatInfo) -> None:
        self._add("file format", self.file_formats, info.name, info)

    def add_action(self, info: ActionInfo) -> None:
        self._add("action", self.actions, info.name, info)

    def remove_plugin(self, plugin: str) -> None:
        """Forget everything a plugin registered (when one of its hooks failed halfway)."""
        tables = {"task": self.tasks, "sampler": self.samplers, "model loader": self.model_loaders,
                  "file format": self.file_formats, "action": self.actions}
        for (kind, name), owner in list(self.owners.items()):
            if owner == plugin:
                tables[kind].pop(name, None)
                del self.owners[(kind, name)]
