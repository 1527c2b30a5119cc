"""Menus that open the training and FID windows, the Image menu, and actions registered by plugins."""

import sys
import types

from PySide6.QtWidgets import QMenu

from diffedit.hookspecs import hookimpl
from diffedit.plugins import PluginHost
from diffedit.qt.main_window import MainWindow
from diffedit.settings import Settings
from diffedit.tasks.registry import ActionInfo


def _menu_action(win: MainWindow, menu_title: str, label: str):
    bar = win.menuBar()
    menu = next(m for m in bar.findChildren(QMenu) if m.title().replace("&", "") == menu_title)
    return next(a for a in menu.actions() if a.text().replace("&", "") == label)


def test_a_plugin_action_appears_in_its_menu_and_changes_the_document(qtbot, png_path, monkeypatch) -> None:
    plugin = types.ModuleType("invert_plugin")
    plugin.DIFFEDIT_PLUGIN_API = ">=1"

    def invert_layer(doc) -> None:
        layer = doc.active
        px = layer.surface.to_array()
        px[..., :3] = 255 - px[..., :3]
        doc.replace_pixels(layer, px, "Invert colours")

    plugin.invert_layer = invert_layer

    @hookimpl
    def diffedit_register_actions(registry) -> None:
        registry.add_action(ActionInfo(name="invert", label="Invert Colours", menu="Filters",
                                       callback="invert_plugin:invert_layer"))

    plugin.diffedit_register_actions = diffedit_register_actions
    monkeypatch.setitem(sys.modules, "invert_plugin", plugin)
    host = PluginHost(settings=Settings(), autoload=False)
    host.discover()
    host.load_module(plugin, "invert_plugin")
    win = MainWindow(host=host)
    qtbot.addWidget(win)
    win.open_path(png_path)
    before = win.doc.composite()
    _menu_action(win, "Filters", "Invert Colours").trigger()
    after = win.doc.composite()
    assert (after[..., :3] == 255 - before[..., :3]).all()
    assert win.doc.history.steps[-1] == "Invert colours"
    win.doc.history.undo()
    assert (win.doc.composite() == before).all()


def test_canvas_size_and_scale_image_menus(window: MainWindow, png_path) -> None:
    window.open_path(png_path)
    _menu_action(window, "Image", "Canvas Size…").trigger()
    window.size_dialog.width_box.setValue(120)
    window.size_dialog.accept()
    assert (window.doc.width, window.doc.height) == (120, 64)
    _menu_action(window, "Image", "Scale Image…").trigger()
    window.size_dialog.width_box.setValue(60)
    window.size_dialog.height_box.setValue(32)
    window.size_dialog.accept()
    assert (window.doc.width, window.doc.height) == (60, 32)
    window.doc.history.undo()
    window.doc.history.undo()
    assert (window.doc.width, window.doc.height) == (96, 64)


def test_tools_menu_opens_training_and_fid_windows(window: MainWindow, qtbot) -> None:
    _menu_action(window, "Tools", "Train a Model…").trigger()
    assert window.training_dialog.isVisible()
    _menu_action(window, "Tools", "Compare Checkpoints (FID)…").trigger()
    assert window.fid_window.isVisible()
    window.training_dialog.close()
    window.fid_window.close()
