"""What the window shows before a document is open: a way to start, not an empty grey canvas."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget


class StartPage(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("DiffEdit")
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 2.4)
        font.setBold(True)
        title.setFont(font)
        subtitle = QLabel(
            "Paint, mask and edit images for diffusion models.\nStart with a new document or open an image."
        )
        subtitle.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.new_button = QPushButton("New document…")
        self.open_button = QPushButton("Open…")
        for button in (self.new_button, self.open_button):
            button.setMinimumWidth(220)
            button.setMinimumHeight(36)
        hint = QLabel("You can also drop an image or .ora file on this window.")
        hint.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        for widget in (title, subtitle, self.new_button, self.open_button, hint):
            layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
            layout.addSpacing(8)
        layout.addStretch(3)
