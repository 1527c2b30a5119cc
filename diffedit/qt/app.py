"""Starting the editor: the QApplication, one window per file (or a start page), the exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication

from diffedit import __version__
from diffedit.qt.fonts import app_icon, use_bundled_font_if_alone
from diffedit.qt.main_window import MainWindow

# Windows must stay referenced while the event loop runs; Qt does not own top-level Python widgets.
_windows: list[MainWindow] = []


def open_windows(files: Sequence[str]) -> list[MainWindow]:
    """Show one window per file, or one window with the start page when there are no files."""
    windows = []
    for path in files or [None]:
        window = MainWindow()
        window.show()
        if path is not None:
            window.open_path(path)  # a file that cannot be read shows an error over the start page
        windows.append(window)
    windows[0].offer_recovery()  # a crash left unsaved work behind: offer it (not blocking)
    _windows.extend(windows)
    return windows


def run_editor(files: Sequence[str]) -> int:
    """Open the editor with the given images or .ora documents and run until the last window closes."""
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "diffedit"])
    app.setApplicationName("DiffEdit")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("DiffEdit")
    use_bundled_font_if_alone(app)
    app.setWindowIcon(app_icon())
    windows = open_windows(files)
    try:
        return int(app.exec())
    finally:
        for window in windows:
            if window in _windows:
                _windows.remove(window)
