"""Finding, loading and isolating plugins, and the typed facade through which the core calls hooks.

Plugins come from the `diffedit.plugins` entry-point group (built-ins are registered there too, by
this distribution) and from plugin folders (settings, DIFFEDIT_PLUGIN_PATH). Each plugin's hooks are
called one by one, so a plugin that fails to import, raises, registers a name twice or implements an
unknown hook is marked failed with its traceback while every other plugin keeps working.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from diffedit import hookspecs, plugin_install
from diffedit.settings import Settings
from diffedit.tasks.registry import Registry

REGISTRAR_HOOKS = (
    "diffedit_register_samplers",
    "diffedit_register_model_loaders",
    "diffedit_register_file_formats",
    "diffedit_register_tasks",
    "diffedit_register_actions",
)
BUILTIN_DISTRIBUTION = "diffedit"


@dataclass
class PluginRecord:
    """What `diffedit plugins list` shows for one plugin."""

    name: str
    source: str  # "built-in", "entry point", "installed" (plugins install) or "folder"
    version: str = ""
    module: str = ""
    location: str = ""
    hooks: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # "task:inpaint", "sampler:ddim", ...
    status: str = "loaded"  # loaded | failed | disabled | incompatible
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Candidate:
    name: str
    source: str
    version: str
    load: Any  # () -> module
    location: str = ""


def _entry_point_candidates() -> list[_Candidate]:
    found = []
    for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        dist = ep.dist
        dist_name = (dist.metadata["Name"] if dist else "") or ""
        builtin = dist_name.lower() == BUILTIN_DISTRIBUTION
        found.append(_Candidate(ep.name, "built-in" if builtin else "entry point", dist.version if dist else "",
                                ep.load, dist_name))
    return found


def plugin_folders(settings: Settings) -> list[Path]:
    """DIFFEDIT_PLUGIN_PATH, the settings' plugin folders, then the user plugin folder (`plugins install`)."""
    env = [p for p in os.environ.get("DIFFEDIT_PLUGIN_PATH", "").split(os.pathsep) if p]
    return [Path(p) for p in [*env, *settings.plugin_folders]] + [plugin_install.user_plugin_dir()]


def _installed_candidates() -> list[_Candidate]:
    """Entry points of the distributions `diffedit plugins install` unpacked (wheels, project folders)."""
    found = []
    for folder in plugin_install.site_paths():
        for dist in metadata.distributions(path=[str(folder)]):
            for ep in dist.entry_points:
                if ep.group != hookspecs.ENTRY_POINT_GROUP:
                    continue

                def load(ep: metadata.EntryPoint = ep, folder: Path = folder) -> Any:
                    plugin_install.ensure_on_path(folder)
                    return ep.load()

                found.append(_Candidate(ep.name, "installed", dist.version, load, str(folder)))
    return found


def _folder_candidates(folders: list[Path]) -> list[_Candidate]:
    """Plugins in folders: each package (a folder with __init__.py) or .py module is one plugin."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            if entry.is_dir() and (entry / "__init__.py").exists():
                name = entry.name
            elif entry.suffix == ".py":
                name = entry.stem
            else:
                continue

            def load(name: str = name, folder: Path = folder) -> ModuleType:
                if str(folder) not in sys.path:
                    sys.path.insert(0, str(folder))
                return importlib.import_module(name)

            found.append(_Candidate(name, "folder", "", load, str(folder)))
    return found


def _check_api(module: ModuleType) -> str:
    """'' when the plugin supports this plugin API, else the reason it is not loaded."""
    spec = getattr(module, "DIFFEDIT_PLUGIN_API", None)
    if spec is None:
        return (f"it does not declare DIFFEDIT_PLUGIN_API; add e.g. DIFFEDIT_PLUGIN_API = '>=1,<2' "
                f"(this DiffEdit provides plugin API {hookspecs.PLUGIN_API_VERSION})")
    try:
        ok = SpecifierSet(str(spec)).contains(hookspecs.PLUGIN_API_VERSION, prereleases=True)
    except InvalidSpecifier:
        return f"its DIFFEDIT_PLUGIN_API {spec!r} is not a version specifier such as '>=1,<2'"
    if not ok:
        return f"it supports plugin API {spec}, but this DiffEdit provides {hookspecs.PLUGIN_API_VERSION}"
    return ""


class PluginHost:
    """The plugin manager and the registry it fills: the one typed way the core talks to plugins."""

    def __init__(self, settings: Settings | None = None, autoload: bool | None = None) -> None:
        self.settings = settings or Settings.load()
        if autoload is None:
            autoload = os.environ.get("DIFFEDIT_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes")
        self.autoload = autoload
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.records: dict[str, PluginRecord] = {}

    # -- discovery -----------------------------------------------------------------------------
    def discover(self) -> Registry:
        """Load every plugin and call its registrar hooks; never raises for a broken plugin."""
        candidates = _entry_point_candidates()
        if not self.autoload:
            candidates = [c for c in candidates if c.source == "built-in"]
        else:
            candidates += _installed_candidates() + _folder_candidates(plugin_folders(self.settings))
        for candidate in candidates:
            self._load(candidate)
        return self.registry

    def load_module(self, module: ModuleType, name: str, source: str = "module") -> PluginRecord:
        """Register an already imported module as a plugin (tests, embedding)."""
        return self._load(_Candidate(name, source, getattr(module, "__version__", ""), lambda: module))

    def _load(self, candidate: _Candidate) -> PluginRecord:
        record = PluginRecord(candidate.name, candidate.source, candidate.version, location=candidate.location)
        if candidate.name in self.records:
            record.status, record.error = "failed", f"another plugin named '{candidate.name}' is already loaded"
            self.records[f"{candidate.name} ({candidate.source})"] = record
            return record
        self.records[candidate.name] = record
        if candidate.name in self.settings.disabled_plugins:
            record.status = "disabled"
            return record
        try:
            module = candidate.load()
        except Exception:
            record.status, record.error = "failed", traceback.format_exc()
            return record
        record.module = getattr(module, "__name__", "")
        record.version = record.version or str(getattr(module, "__version__", ""))
        reason = _check_api(module)
        if reason:
            record.status, record.error = "incompatible", f"not loaded: {reason}"
            return record
        try:
            self.pm.register(module, name=candidate.name)
        except Exception:
            record.status, record.error = "failed", traceback.format_exc()
            return record
        unknown = [h.name for h in self.pm.get_hookcallers(module) or [] if not h.has_spec()]
        record.hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
        if unknown:
            self._fail(record, module, f"implements unknown hook(s) {', '.join(unknown)}; known hooks are "
                                       f"{', '.join(REGISTRAR_HOOKS)}")
            return record
        self.registry.current_plugin = candidate.name
        try:
            for hook_name in REGISTRAR_HOOKS:
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin is module:
                        impl.function(registry=self.registry)
        except Exception:
            self._fail(record, module, traceback.format_exc())
            return record
        finally:
            self.registry.current_plugin = ""
        record.registered = sorted(f"{kind}:{name}" for (kind, name), owner in self.registry.owners.items()
                                   if owner == candidate.name)
        return record

    def _fail(self, record: PluginRecord, module: ModuleType, error: str) -> None:
        record.status, record.error = "failed", error
        self.registry.remove_plugin(record.name)
        self.pm.unregister(module)

    # -- queries -------------------------------------------------------------------------------
    def list_plugins(self) -> list[PluginRecord]:
        return list(self.records.values())

    def failed(self) -> list[PluginRecord]:
        return [r for r in self.records.values() if r.status in ("failed", "incompatible")]


def set_plugin_enabled(name: str, enabled: bool, settings: Settings | None = None) -> Settings:
    """Remember that a plugin is enabled or disabled (takes effect at the next start)."""
    settings = settings or Settings.load()
    disabled = [n for n in settings.disabled_plugins if n != name]
    if not enabled:
        disabled.append(name)
    settings.disabled_plugins = disabled
    settings.save()
    return settings


_default_host: PluginHost | None = None


def default_host() -> PluginHost:
    """The process-wide plugin host, discovered on first use."""
    global _default_host
    if _default_host is None:
        _default_host = PluginHost()
        _default_host.discover()
    return _default_host


def importable(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None
