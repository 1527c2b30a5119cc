"""Tools > Plugins > Install…: installs a pure-Python plugin into the user plugin folder, or says why not."""

import sys
from pathlib import Path

from PySide6.QtWidgets import QDialogButtonBox

from diffedit.plugin_install import installed_plugins, user_plugin_dir
from diffedit.qt.preferences import PluginsDialog

EXAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "example-sharpen"


def test_install_button_installs_a_plugin_folder(qtbot, tmp_path: Path) -> None:
    dialog = PluginsDialog([])
    qtbot.addWidget(dialog)
    assert dialog.install_button.text() == "Install…"
    assert [a.text() for a in dialog.install_button.menu().actions()] == ["Wheel or .py file…", "Plugin folder…"]
    box = dialog.findChild(QDialogButtonBox)
    assert dialog.install_button in box.buttons()
    assert dialog.install_path(str(EXAMPLE))
    assert "Installed diffedit-sharpen 0.1.0" in dialog.note.text() and "next time" in dialog.note.text()
    assert [i.name for i in installed_plugins()] == ["diffedit-sharpen"]
    assert str(user_plugin_dir()) in dialog.note.text()
    sys.modules.pop("diffedit_sharpen", None)


def test_install_button_refuses_a_compiled_wheel(qtbot, tmp_path: Path) -> None:
    dialog = PluginsDialog([])
    qtbot.addWidget(dialog)
    wheel = tmp_path / "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    wheel.write_bytes(b"PK")
    assert not dialog.install_path(str(wheel))
    assert dialog.note.text().startswith("Not installed:") and "compiled code" in dialog.note.text()
    assert installed_plugins() == []
