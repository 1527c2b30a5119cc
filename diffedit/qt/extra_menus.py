"""Menu entries that open the larger windows (training, FID, models) or come from plugins, and the Image
menu's size dialogs. Kept apart so the main window stays small; the heavy modules load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMenu

from diffedit.qt.dialogs import SizeDialog
from diffedit.tasks.registry import ActionInfo

if TYPE_CHECKING:
    from diffedit.qt.main_window import MainWindow


def canvas_size(window: MainWindow) -> None:
    """Image > Canvas Size: grow or crop around the centre, as one undo step."""
    doc = window._doc()
    dialog = SizeDialog("Canvas Size", doc.width, doc.height, window)
    dialog.accepted.connect(lambda: doc.resize_canvas(*dialog.size_value(), (dialog.size_value()[0] - doc.width) // 2,
                                                      (dialog.size_value()[1] - doc.height) // 2))
    window.size_dialog = dialog
    dialog.open()


def scale_image(window: MainWindow) -> None:
    """Image > Scale Image: resample every layer to a new size, as one undo step."""
    doc = window._doc()
    dialog = SizeDialog("Scale Image", doc.width, doc.height, window)
    dialog.accepted.connect(lambda: doc.scale_image(dialog.size_value()))
    window.size_dialog = dialog
    dialog.open()


def open_training(window: MainWindow) -> None:
    from shiboken6 import isValid

    from diffedit.qt.training_dialog import open_training_dialog

    dialog = getattr(window, "training_dialog", None)
    if dialog is not None and isValid(dialog):
        dialog.raise_()
        dialog.activateWindow()
        return
    refresh = window.task_panel._refresh_models  # finished checkpoints appear in the model list
    window.training_dialog = open_training_dialog(window, on_checkpoint=lambda _path: refresh())


def open_models(window: MainWindow) -> None:
    """Tools > Models…: list, add, import, download and remove models; the task panel follows changes."""
    from shiboken6 import isValid

    from diffedit.qt.models_dialog import open_models_dialog

    dialog = getattr(window, "models_dialog", None)
    if dialog is not None and isValid(dialog):
        dialog.raise_()
        dialog.activateWindow()
        return
    window.models_dialog = open_models_dialog(window)
    window.models_dialog.models_changed.connect(window.task_panel._refresh_models)


def open_fid(window: MainWindow) -> None:
    from diffedit.qt.fid_panel import open_fid_panel

    window.fid_window = open_fid_panel(window)


def shutdown(window: MainWindow) -> None:
    """Stop a running training before the window goes (FID windows stop themselves)."""
    from shiboken6 import isValid

    dialog = getattr(window, "training_dialog", None)
    if dialog is not None and isValid(dialog):
        dialog.shutdown()
    models = getattr(window, "models_dialog", None)
    if models is not None and isValid(models):
        models.shutdown()


def install_plugin_actions(window: MainWindow, actions: dict[str, ActionInfo]) -> list[str]:
    """One menu entry per plugin action, under the menu it names (created when missing)."""
    bar = window.menuBar()
    menus = {m.title().replace("&", ""): m for m in bar.findChildren(QMenu) if m.parent() is bar}
    added = []
    for info in actions.values():
        menu = menus.get(info.menu) or menus.setdefault(info.menu, bar.addMenu(info.menu))
        window._action(menu, info.label, lambda info=info: _call_action(window, info))
        added.append(info.name)
    return added


def _call_action(window: MainWindow, info: ActionInfo) -> None:
    module_name, _, func = info.callback.partition(":")
    callback = getattr(importlib.import_module(module_name), func)
    callback(window._doc())
