"""Installing third-party plugins without pip: `diffedit plugins install PATH` and `plugins uninstall NAME`.

Meant for the packaged app, which has no pip and cannot gain compiled code. What can be installed:

- a pure-Python wheel (`py3-none-any`): unpacked, with its `.dist-info`, into
  `<user plugin folder>/.site/<name>/`; its `diffedit.plugins` entry points load at start-up, under
  their entry-point names, as they would after `pip install`;
- a plugin project folder (a `pyproject.toml` declaring `diffedit.plugins` entry points, such as
  `plugins/example-sharpen`): its packages are copied the same way, with metadata written from the
  project table;
- a plugin package folder (with `__init__.py`) or a single `.py` module: copied into the user plugin
  folder, which is searched at start-up like any plugin folder.

Refused, with the reason: wheels for a particular Python, ABI or platform (compiled code), folders
holding compiled extension modules, and plugins whose `Requires-Dist` names a package this DiffEdit
does not contain. Changes take effect at the next start.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from diffedit.hookspecs import ENTRY_POINT_GROUP
from diffedit.settings import config_dir

SITE = ".site"  # under the user plugin folder: one folder per installed distribution
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
# Distribution names whose import name differs (used when a frozen app lacks a distribution's metadata).
IMPORT_NAMES = {"pillow": "PIL", "pyside6": "PySide6", "pyside6-essentials": "PySide6", "scikit-image": "skimage",
                "scikit-learn": "sklearn", "opencv-python": "cv2", "opencv-python-headless": "cv2",
                "pyyaml": "yaml", "huggingface-hub": "huggingface_hub", "diffedit": "diffedit"}


class PluginInstallError(ValueError):
    """The plugin cannot be installed (or removed); the message says why and what to do instead."""


@dataclass
class Installed:
    name: str  # distribution name, or the module name of a plain plugin folder or file
    version: str
    path: Path
    entry_points: list[str] = field(default_factory=list)


def user_plugin_dir() -> Path:
    """The folder installed plugins go to (searched at start-up): `<config folder>/plugins`."""
    return config_dir() / "plugins"


def site_dir() -> Path:
    return user_plugin_dir() / SITE


# -- checks --------------------------------------------------------------------------------------------
def check_wheel_tags(filename: str) -> tuple[str, str]:
    """(name, version) of a pure-Python wheel; raises for a wheel with compiled code or a bad name."""
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise PluginInstallError(f"'{filename}' is not a wheel file name ({exc})") from exc
    if not any(t.abi == "none" and t.platform == "any" and t.interpreter.startswith("py3") for t in tags):
        shown = ", ".join(sorted(str(t) for t in tags))
        raise PluginInstallError(
            f"'{filename}' is built for {shown}, so it contains compiled code; this DiffEdit can install only "
            f"pure-Python plugins (py3-none-any wheels). Install it into a Python install of DiffEdit with pip")
    return str(name), str(version)


def _present_version(dist_name: str) -> str | None:
    """The version of a distribution this DiffEdit contains, '' when importable without metadata, else None."""
    try:
        return metadata.version(dist_name)
    except metadata.PackageNotFoundError:
        pass
    key = str(canonicalize_name(dist_name))
    module = IMPORT_NAMES.get(key, key.replace("-", "_"))
    from diffedit.plugins import importable

    try:
        return "" if importable(module) else None
    except (ImportError, ValueError):
        return None


def check_requirements(requires: list[str], what: str) -> None:
    """Refuse a plugin needing a package that is missing here (the app cannot gain packages by itself)."""
    env = dict(default_environment(), extra="")
    missing: list[str] = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise PluginInstallError(f"{what} has an unreadable requirement {line!r}: {exc}") from exc
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # an extra, or for another platform
        found = _present_version(req.name)
        if found is None:
            missing.append(f"'{req.name}' (not part of this DiffEdit)")
        elif found and req.specifier and not req.specifier.contains(found, prereleases=True):
            missing.append(f"'{req.name}{req.specifier}' (this DiffEdit has {found})")
    if missing:
        raise PluginInstallError(
            f"{what} needs {', '.join(missing)}; the packaged DiffEdit cannot add packages (compiled ones "
            f"least of all). Install DiffEdit with pip to use this plugin, or ask its author for a version "
            f"without these requirements")


def _compiled_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix.lower() in COMPILED_SUFFIXES
                  or ".so." in p.name)


# -- installing ----------------------------------------------------------------------------------------
def install(path: str | Path, *, replace: bool = True) -> Installed:
    """Install a wheel, a plugin project folder, a plugin package folder or a `.py` module."""
    source = Path(path).expanduser()
    if not source.exists():
        raise PluginInstallError(f"'{source}' does not exist")
    if source.is_file() and source.suffix == ".whl":
        return install_wheel(source, replace=replace)
    if source.is_file() and source.suffix == ".py":
        return _install_plain(source, source.stem, replace)
    if source.is_dir() and (source / "pyproject.toml").is_file():
        return install_project(source, replace=replace)
    if source.is_dir() and (source / "__init__.py").is_file():
        compiled = _compiled_files(source)
        if compiled:
            raise PluginInstallError(f"'{source.name}' holds compiled modules ({', '.join(compiled[:3])}); "
                                     f"only pure-Python plugins can be installed here")
        return _install_plain(source, source.name, replace)
    raise PluginInstallError(f"'{source}' is not a plugin: give a .whl file, a project folder with pyproject.toml, "
                             f"a package folder with __init__.py or a .py file")


def _install_plain(source: Path, name: str, replace: bool) -> Installed:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise PluginInstallError(f"'{source.name}' is not an importable module name")
    folder = user_plugin_dir()
    target = folder / (name if source.is_dir() else source.name)
    _make_room(target, replace, name)
    folder.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(source, target)
    return Installed(name, "", target)


def _make_room(target: Path, replace: bool, name: str) -> None:
    if target.exists():
        if not replace:
            raise PluginInstallError(f"'{name}' is already installed; uninstall it first")
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def _safe_members(archive: zipfile.ZipFile) -> list[str]:
    names = archive.namelist()
    for name in names:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or "\\" in name:
            raise PluginInstallError(f"the wheel holds an unsafe path {name!r}")
    return names


def install_wheel(wheel: Path, *, replace: bool = True) -> Installed:
    name, version = check_wheel_tags(wheel.name)
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise PluginInstallError(f"'{wheel.name}' is not a valid wheel (not a zip archive)") from exc
    with archive, tempfile.TemporaryDirectory(prefix="diffedit-wheel-") as tmp:
        members = _safe_members(archive)
        compiled = [m for m in members if m.lower().endswith(COMPILED_SUFFIXES)]
        if compiled:
            raise PluginInstallError(f"'{wheel.name}' contains compiled modules ({', '.join(compiled[:3])}); only "
                                     f"pure-Python plugins can be installed into the packaged DiffEdit")
        archive.extractall(tmp)
        staged = Path(tmp)
        infos = list(staged.glob("*.dist-info"))
        if len(infos) != 1:
            raise PluginInstallError(f"'{wheel.name}' has {len(infos)} .dist-info folders, expected one")
        dist = metadata.PathDistribution(infos[0])
        if (infos[0] / "WHEEL").is_file() and "root-is-purelib: false" in (infos[0] / "WHEEL").read_text().lower():
            raise PluginInstallError(f"'{wheel.name}' is not a pure-Python wheel (Root-Is-Purelib: false)")
        for data in staged.glob("*.data"):  # scripts and headers are of no use to a plugin
            shutil.rmtree(data)
        return _place(staged, dist, name, version, replace, f"'{wheel.name}'")


def install_project(project: Path, *, replace: bool = True) -> Installed:
    """A plugin project folder: copy the packages its entry points name, and write their metadata."""
    try:
        data = tomllib.loads((project / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PluginInstallError(f"cannot read {project / 'pyproject.toml'}: {exc}") from exc
    table = data.get("project", {})
    name, version = str(table.get("name", "")), str(table.get("version", "0"))
    eps = table.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    if not name or not eps:
        raise PluginInstallError(f"'{project.name}' declares no [project.entry-points.\"{ENTRY_POINT_GROUP}\"]; "
                                 f"it is not a DiffEdit plugin project")
    setup = project / "setup.py"
    if setup.is_file() and "ext_modules" in setup.read_text(errors="replace"):
        raise PluginInstallError(f"'{project.name}' builds compiled modules (setup.py ext_modules); only "
                                 f"pure-Python plugins can be installed here")
    with tempfile.TemporaryDirectory(prefix="diffedit-project-") as tmp:
        staged = Path(tmp)
        for top in sorted({str(v).split(":")[0].split(".")[0] for v in eps.values()}):
            found = next((base / top for base in (project, project / "src") if (base / top).is_dir()
                          or (base / f"{top}.py").is_file()), None)
            if found is None:
                raise PluginInstallError(f"'{project.name}': module '{top}' named by its entry points is not there")
            if found.is_dir():
                shutil.copytree(found, staged / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(found.with_suffix(".py"), staged / f"{top}.py")
        compiled = _compiled_files(staged)
        if compiled:
            raise PluginInstallError(f"'{project.name}' holds compiled modules ({', '.join(compiled[:3])}); only "
                                     f"pure-Python plugins can be installed here")
        info = staged / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in table.get("dependencies", [])]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        eps_text = f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        (info / "entry_points.txt").write_text(eps_text)
        return _place(staged, metadata.PathDistribution(info), name, version, replace, f"'{project.name}'")


def _place(staged: Path, dist: metadata.Distribution, name: str, version: str, replace: bool,
           what: str) -> Installed:
    eps = [f"{ep.name} = {ep.value}" for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if not eps:
        raise PluginInstallError(f"{what} declares no '{ENTRY_POINT_GROUP}' entry point; it is not a DiffEdit plugin")
    check_requirements(list(dist.requires or []), what)
    key = str(canonicalize_name(name))
    target = site_dir() / key
    _make_room(target, replace, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(staged, target)
    (target / "diffedit-install.json").write_text(json.dumps({"name": name, "version": version,
                                                               "entry_points": eps}, indent=2))
    return Installed(name, version, target, eps)


# -- listing and removing ------------------------------------------------------------------------------
def installed_plugins() -> list[Installed]:
    found: list[Installed] = []
    site = site_dir()
    for folder in sorted(site.iterdir()) if site.is_dir() else []:
        try:
            info = json.loads((folder / "diffedit-install.json").read_text())
        except (OSError, ValueError):
            continue
        found.append(Installed(str(info.get("name", folder.name)), str(info.get("version", "")), folder,
                               [str(e) for e in info.get("entry_points", [])]))
    plain = user_plugin_dir()
    for entry in sorted(plain.iterdir()) if plain.is_dir() else []:
        if entry.name.startswith((".", "_")):
            continue
        if (entry.is_dir() and (entry / "__init__.py").exists()) or entry.suffix == ".py":
            found.append(Installed(entry.stem if entry.is_file() else entry.name, "", entry))
    return found


def uninstall(name: str) -> Installed:
    """Remove an installed plugin by distribution, entry-point or module name."""
    key = str(canonicalize_name(name))
    for item in installed_plugins():
        ep_names = [e.split("=")[0].strip() for e in item.entry_points]
        if name == item.name or key == str(canonicalize_name(item.name)) or name in ep_names:
            shutil.rmtree(item.path) if item.path.is_dir() else item.path.unlink()
            return item
    names = ", ".join(i.name for i in installed_plugins()) or "none"
    raise PluginInstallError(f"no installed plugin named '{name}' in {user_plugin_dir()} (installed: {names}); "
                             f"built-in plugins and those installed with pip cannot be removed here "
                             f"(disable them instead)")


def site_paths() -> list[Path]:
    """The folders of installed distributions, for the plugin host (and sys.path at start-up)."""
    site = site_dir()
    return sorted(p for p in site.iterdir() if p.is_dir()) if site.is_dir() else []


def ensure_on_path(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
