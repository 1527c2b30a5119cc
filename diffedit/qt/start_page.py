"""What the window shows before a document is open: a way to start, not an empty grey canvas.

New, Open, the bundled sample images (to try the editor without hunting for a file) and recent files.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

THUMB = 96


def _thumbnail(path: Path) -> QIcon:
    image = QImage(str(path))
    if image.isNull():
        return QIcon()
    scaled = image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return QIcon(QPixmap.fromImage(scaled))


class StartPage(QWidget):
    open_requested = Signal(str)  # a sample or recent file was chosen

    def __init__(self, samples: list[Path] | None = None, parent: QWidget | None = None) -> None:
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
        self.sample_buttons: list[QToolButton] = []
        samples_row = QHBoxLayout()
        for path in samples or []:
            button = QToolButton()
            button.setText(path.stem.capitalize())
            button.setIcon(_thumbnail(path))
            button.setIconSize(QSize(THUMB, THUMB))
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            button.setToolTip(f"Open the sample image {path.name}")
            button.clicked.connect(lambda _=False, p=path: self.open_requested.emit(str(p)))
            samples_row.addWidget(button)
            self.sample_buttons.append(button)
        self.recent_label = QLabel("Recent files")
        self.recent_list = QListWidget()
        self.recent_list.setMinimumWidth(420)
        self.recent_list.itemClicked.connect(self._recent_chosen)
        hint = QLabel("You can also drop an image or .ora file on this window.")
        hint.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        for widget in (title, subtitle, self.new_button, self.open_button):
            layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
            layout.addSpacing(8)
        if self.sample_buttons:
            label = QLabel("Or try a sample image:")
            layout.addWidget(label, 0, Qt.AlignmentFlag.AlignHCenter)
            layout.addLayout(samples_row)
            samples_row.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            layout.addSpacing(8)
        layout.addWidget(self.recent_label, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.recent_list, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(8)
        layout.addWidget(hint, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)
        self.set_recent([])

    def set_recent(self, paths: list[str]) -> None:
        """Show the recent files (name, then folder); hidden when there are none."""
        self.recent_list.clear()
        for p in paths:
            item = QListWidgetItem(f"{Path(p).name}  —  {Path(p).parent}")
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setToolTip(p)
            self.recent_list.addItem(item)
        row = self.recent_list.sizeHintForRow(0) if paths else 0
        self.recent_list.setFixedHeight(min(len(paths), 6) * row + 2 * self.recent_list.frameWidth() + 4)
        self.recent_label.setVisible(bool(paths))
        self.recent_list.setVisible(bool(paths))

    def _recent_chosen(self, item: QListWidgetItem) -> None:
        self.open_requested.emit(str(item.data(Qt.ItemDataRole.UserRole)))
