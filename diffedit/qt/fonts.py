"""The bundled font (resources/fonts) and the app icon, so text renders and the window has its icon on
systems without fonts or desktop integration (a bare Linux running the packaged app)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QIcon, QImage, QPainter
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parents[2] / "resources"  # the source tree or the frozen app's folder
_registered: list[str] = []


def register_bundled_fonts() -> list[str]:
    """Add resources/fonts/*.ttf to Qt's font database once; returns the font families they provide."""
    if not _registered:
        for path in sorted((RESOURCES / "fonts").glob("*.[ot]tf")):
            font_id = QFontDatabase.addApplicationFont(str(path))
            if font_id >= 0:
                _registered.extend(f for f in QFontDatabase.applicationFontFamilies(font_id) if f not in _registered)
    return list(_registered)


def use_bundled_font_if_alone(app: QGuiApplication) -> list[str]:
    """Register the bundled fonts; when the system has no fonts of its own, make them the app's font."""
    families = register_bundled_fonts()
    if families and set(QFontDatabase.families()) <= set(families):
        app.setFont(QFont(families[0], 10))
    return families


def app_icon() -> QIcon:
    icon = QIcon()
    for path in sorted((RESOURCES / "icons").glob("diffedit-*.png")):
        icon.addFile(str(path))
    return icon


def render_text_check() -> str:
    """For `--selftest`: start Qt (offscreen unless told otherwise), draw text, check pixels were drawn."""
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "diffedit"])
    families = use_bundled_font_if_alone(app)  # type: ignore[arg-type]
    image = QImage(120, 32, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setFont(QFont(families[0] if families else "", 14))
    painter.setPen(QColor("black"))
    painter.drawText(4, 24, "DiffEdit")
    painter.end()
    dark = sum(1 for x in range(120) for y in range(32) if image.pixelColor(x, y).lightness() < 128)
    if not dark:
        raise RuntimeError("Qt drew no text: no usable font (install fonts-dejavu-core or fontconfig)")
    font = families[0] if families else "a system font"
    return f"Qt {QGuiApplication.platformName()} platform; text drawn with {font}"
