"""`diffedit plugins install/uninstall` without pip: wheels, project and package folders, refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from diffedit import plugin_install
from diffedit.plugin_install import PluginInstallError, install, installed_plugins, uninstall
from diffedit.plugins import PluginHost
from diffedit.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "plugins" / "example-sharpen"


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private config folder; the example plugin's modules are forgotten after each test."""
    folder = tmp_path / "config"
    monkeypatch.setenv("DIFFEDIT_CONFIG_DIR", str(folder))
    saved_path = list(sys.path)
    yield folder
    sys.path[:] = saved_path
    for name in [m for m in sys.modules if m.split(".")[0] == "diffedit_sharpen"]:
        del sys.modules[name]


def _discover() -> PluginHost:
    host = PluginHost(settings=Settings())
    host.discover()
    return host


def _rewrite_wheel(wheel: Path, out: Path, edit_metadata: str = "", extra: dict[str, bytes] | None = None) -> Path:
    """A copy of `wheel` named `out`, with lines appended to METADATA and extra members."""
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".dist-info/METADATA") and edit_metadata:
                data = data.replace(b"\n\n", f"\n{edit_metadata}\n\n".encode(), 1)
            dst.writestr(info, data)
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out


def test_install_a_wheel_loads_at_start_and_uninstall_removes_it(sharpen_wheel: Path, config: Path) -> None:
    item = install(sharpen_wheel)
    assert item.name == "diffedit-sharpen" and item.version == "0.1.0"
    assert item.entry_points == ["sharpen = diffedit_sharpen"]
    assert item.path == config / "plugins" / ".site" / "diffedit-sharpen"
    host = _discover()
    record = host.records["sharpen"]
    assert (record.status, record.source, record.version) == ("loaded", "installed", "0.1.0")
    assert "sharpen" in host.registry.tasks
    assert [i.name for i in installed_plugins()] == ["diffedit-sharpen"]
    assert uninstall("sharpen").name == "diffedit-sharpen"
    assert not item.path.exists() and installed_plugins() == []
    assert "sharpen" not in _discover().registry.tasks


def test_install_a_project_folder(config: Path) -> None:
    item = install(EXAMPLE)
    assert (item.name, item.version) == ("diffedit-sharpen", "0.1.0")
    assert (item.path / "diffedit_sharpen" / "run.py").is_file()
    assert not list(item.path.rglob("__pycache__"))
    host = _discover()
    assert host.records["sharpen"].status == "loaded" and "sharpen" in host.registry.tasks
    uninstall("diffedit-sharpen")
    assert installed_plugins() == []


def test_install_a_package_folder_goes_to_the_user_plugin_folder(config: Path) -> None:
    item = install(EXAMPLE / "diffedit_sharpen")
    assert item.path == config / "plugins" / "diffedit_sharpen"
    host = _discover()
    assert host.records["diffedit_sharpen"].source == "folder" and "sharpen" in host.registry.tasks
    uninstall("diffedit_sharpen")
    assert not item.path.exists()


def test_reinstalling_replaces(sharpen_wheel: Path) -> None:
    install(sharpen_wheel)
    install(sharpen_wheel)
    assert len(installed_plugins()) == 1
    with pytest.raises(PluginInstallError, match="already installed"):
        install(sharpen_wheel, replace=False)


def test_a_compiled_wheel_is_refused(sharpen_wheel: Path, tmp_path: Path, config: Path) -> None:
    compiled = tmp_path / "diffedit_sharpen-0.1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    shutil.copy(sharpen_wheel, compiled)
    with pytest.raises(PluginInstallError, match=r"contains compiled code.*pure-Python plugins"):
        install(compiled)
    hidden = _rewrite_wheel(sharpen_wheel, tmp_path / sharpen_wheel.name,
                            extra={"diffedit_sharpen/_speedups.cpython-311-x86_64-linux-gnu.so": b"\x7fELF"})
    with pytest.raises(PluginInstallError, match="compiled modules"):
        install(hidden)
    assert not (config / "plugins" / ".site" / "diffedit-sharpen").exists()


def test_a_plugin_needing_a_missing_package_is_refused(sharpen_wheel: Path, tmp_path: Path) -> None:
    needy = _rewrite_wheel(sharpen_wheel, tmp_path / sharpen_wheel.name,
                           "Requires-Dist: surely-not-installed-pkg>=1\nRequires-Dist: numpy>=1")
    with pytest.raises(PluginInstallError, match="'surely-not-installed-pkg' \\(not part of this DiffEdit\\)"):
        install(needy)
    (tmp_path / "x").mkdir()
    too_new = _rewrite_wheel(sharpen_wheel, tmp_path / "x" / sharpen_wheel.name, "Requires-Dist: numpy>=999")
    with pytest.raises(PluginInstallError, match=r"numpy>=999.*this DiffEdit has"):
        install(too_new)
    platform_only = _rewrite_wheel(sharpen_wheel, tmp_path / "y.whl",
                                   'Requires-Dist: surely-not-installed-pkg; sys_platform == "nonexistent"')
    renamed = platform_only.rename(tmp_path / "x" / "diffedit_sharpen-0.1.0-py3-none-any.whl")
    assert install(renamed).name == "diffedit-sharpen"  # a requirement for another platform does not count


def test_not_a_plugin(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(PluginInstallError, match="is not a plugin"):
        install(tmp_path / "notes.txt")
    with pytest.raises(PluginInstallError, match="does not exist"):
        install(tmp_path / "missing.whl")
    with pytest.raises(PluginInstallError, match="no installed plugin named 'ghost'"):
        uninstall("ghost")


def test_plugins_install_and_uninstall_commands(sharpen_wheel: Path, config: Path) -> None:
    env = {**os.environ, "DIFFEDIT_CONFIG_DIR": str(config)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "diffedit", "plugins", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    done = run("install", str(sharpen_wheel))
    assert done.returncode == 0 and "installed into" in done.stdout and "next start" in done.stdout
    listed = {r["name"]: r for r in json.loads(run("list", "--json").stdout)}
    assert listed["sharpen"]["status"] == "loaded" and listed["sharpen"]["source"] == "installed"
    assert run("uninstall", "sharpen").returncode == 0
    refused = run("install", str(sharpen_wheel.with_name("nothing-1.0-cp311-cp311-win_amd64.whl")))
    assert refused.returncode == 1 and "does not exist" in refused.stderr
    assert "sharpen" not in {r["name"] for r in json.loads(run("list", "--json").stdout)}


def test_user_plugin_folder_is_searched(config: Path) -> None:
    from diffedit.plugins import plugin_folders

    assert plugin_folders(Settings())[-1] == plugin_install.user_plugin_dir() == config / "plugins"
