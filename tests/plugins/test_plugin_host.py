"""Plugin discovery, isolation of broken plugins, API versions, enabling and disabling."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diffedit.hookspecs import PLUGIN_API_VERSION
from diffedit.plugins import PluginHost, set_plugin_enabled
from diffedit.settings import Settings

GOOD = '''
from dataclasses import dataclass
from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.registry import ActionInfo, FileFormatInfo, ModelLoaderInfo, SamplerInfo
DIFFEDIT_PLUGIN_API = ">=1,<2"
__version__ = "2.3"

@dataclass
class P:
    x: int = 1

@hookimpl
def diffedit_register_tasks(registry):
    registry.add_task(TaskSpec(name="{name}-task", label="T", description="d", params=P, runner="x:y",
                               needs_model=False))

@hookimpl
def diffedit_register_samplers(registry):
    registry.add_sampler(SamplerInfo(name="{name}-sampler", label="S", description="d", scheduler="DDIMScheduler"))

@hookimpl
def diffedit_register_model_loaders(registry):
    registry.add_model_loader(ModelLoaderInfo(name="{name}-loader", description="d", detect="a:b", load="a:c"))

@hookimpl
def diffedit_register_file_formats(registry):
    registry.add_file_format(FileFormatInfo(name="{name}-format", extensions=(".{name}",)))

@hookimpl
def diffedit_register_actions(registry):
    registry.add_action(ActionInfo(name="{name}-action", label="A", menu="Filter", callback="a:b"))
'''

BROKEN = {
    "import_error": "raise ImportError('needs a missing library')",
    "raises": textwrap.dedent('''
        from diffedit.hookspecs import hookimpl
        DIFFEDIT_PLUGIN_API = ">=1"
        @hookimpl
        def diffedit_register_tasks(registry):
            raise RuntimeError("boom in a hook")
    '''),
    "zz_duplicate": GOOD.replace("{name}-task", "good-task").replace("{name}", "zz_duplicate"),
    "unknown_hook": textwrap.dedent('''
        from diffedit.hookspecs import hookimpl
        DIFFEDIT_PLUGIN_API = ">=1"
        @hookimpl
        def diffedit_register_wizards(registry):
            pass
    '''),
    "too_new": GOOD.replace('">=1,<2"', '">=2"').replace("{name}", "too_new"),
    "undeclared": GOOD.replace('DIFFEDIT_PLUGIN_API = ">=1,<2"', "").replace("{name}", "undeclared"),
}


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "good.py").write_text(GOOD.replace("{name}", "good"))
    for name, code in BROKEN.items():
        (folder / f"{name}.py").write_text(code)
    monkeypatch.setenv("DIFFEDIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("DIFFEDIT_PLUGIN_PATH", str(folder))
    monkeypatch.delenv("DIFFEDIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    yield folder
    for name in ["good", *BROKEN]:
        sys.modules.pop(name, None)
    if str(folder) in sys.path:
        sys.path.remove(str(folder))


def test_builtins_come_through_the_entry_point_group() -> None:
    host = PluginHost(settings=Settings(), autoload=False)
    host.discover()
    records = {r.name: r for r in host.list_plugins()}
    assert records["samplers"].source == "built-in" and records["samplers"].status == "loaded"
    assert "diffedit_register_samplers" in records["samplers"].hooks
    assert "openraster" in host.registry.file_formats
    assert len(host.registry.samplers) >= 10


def test_folder_plugins_load_and_broken_ones_are_isolated(plugin_dir: Path) -> None:
    host = PluginHost(settings=Settings())
    host.discover()
    rec = host.records
    assert rec["good"].status == "loaded" and rec["good"].source == "folder" and rec["good"].version == "2.3"
    assert set(rec["good"].registered) == {"task:good-task", "sampler:good-sampler", "model loader:good-loader",
                                           "file format:good-format", "action:good-action"}
    assert rec["import_error"].status == "failed" and "needs a missing library" in rec["import_error"].error
    assert rec["raises"].status == "failed" and "boom in a hook" in rec["raises"].error
    assert rec["zz_duplicate"].status == "failed" and "already registered by plugin 'good'" in rec["zz_duplicate"].error
    assert "zz_duplicate-sampler" not in host.registry.samplers  # a failed plugin leaves nothing behind
    assert rec["unknown_hook"].status == "failed" and "diffedit_register_wizards" in rec["unknown_hook"].error
    assert rec["too_new"].status == "incompatible" and PLUGIN_API_VERSION in rec["too_new"].error
    assert rec["undeclared"].status == "incompatible" and "DIFFEDIT_PLUGIN_API" in rec["undeclared"].error
    assert "too_new-task" not in host.registry.tasks
    assert "good-task" in host.registry.tasks and "samplers" in rec  # everything else still works
    host.pm.check_pending()  # nothing unknown is left registered


def test_disable_autoload_loads_builtins_only(plugin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFEDIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = PluginHost(settings=Settings())
    host.discover()
    assert "good" not in host.records and {r.source for r in host.list_plugins()} == {"built-in"}


def test_disabling_a_plugin_is_remembered(plugin_dir: Path) -> None:
    set_plugin_enabled("good", False)
    assert "good" in Settings.load().disabled_plugins
    host = PluginHost()
    host.discover()
    assert host.records["good"].status == "disabled" and "good-sampler" not in host.registry.samplers
    set_plugin_enabled("good", True)
    host = PluginHost()
    host.discover()
    assert host.records["good"].status == "loaded"


def test_plugin_folders_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "from-settings"
    (folder / "settingsplugin").mkdir(parents=True)
    (folder / "settingsplugin" / "__init__.py").write_text(GOOD.replace("{name}", "settingsplugin"))
    monkeypatch.delenv("DIFFEDIT_PLUGIN_PATH", raising=False)
    monkeypatch.delenv("DIFFEDIT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    try:
        host = PluginHost(settings=Settings(plugin_folders=[str(folder)]))
        host.discover()
        assert host.records["settingsplugin"].status == "loaded"
    finally:
        sys.modules.pop("settingsplugin", None)
        sys.path.remove(str(folder))


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffedit", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_plugins_list_cli_json_and_text(plugin_dir: Path) -> None:
    env = {"DIFFEDIT_PLUGIN_PATH": str(plugin_dir), "DIFFEDIT_CONFIG_DIR": os.environ["DIFFEDIT_CONFIG_DIR"]}
    out = _cli("plugins", "list", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["good"]["status"] == "loaded" and rows["raises"]["status"] == "failed"
    assert {"name", "version", "source", "hooks", "registered", "status", "error"} <= set(rows["good"])
    text = _cli("plugins", "list", env=env).stdout
    assert "good 2.3 [folder] loaded" in text and "RuntimeError: boom in a hook" in text
    assert _cli("plugins", "disable", "good", env=env).returncode == 0
    rows = {r["name"]: r for r in json.loads(_cli("plugins", "list", "--json", env=env).stdout)}
    assert rows["good"]["status"] == "disabled"


def test_listing_plugins_imports_no_torch_or_diffusers() -> None:
    code = ("import sys\nfrom diffedit.plugins import PluginHost\nfrom diffedit.settings import Settings\n"
            "h = PluginHost(settings=Settings()); h.discover()\n"
            "assert h.registry.tasks or h.registry.samplers\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'diffusers', 'PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tasks_and_samplers_commands_list_registrations() -> None:
    samplers = json.loads(_cli("samplers", "--json").stdout)
    names = {s["name"] for s in samplers}
    assert {"ddim", "euler", "heun"} <= names and all(s["description"] for s in samplers)
    tasks = _cli("tasks", "--json")
    assert tasks.returncode == 0
    assert isinstance(json.loads(tasks.stdout), list)
