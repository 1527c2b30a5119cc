"""Small dialogs: the size of a new document."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QSpinBox, QWidget

from diffedit.document.document import MAX_DOCUMENT_SIDE

BACKGROUNDS: dict[str, tuple[int, int, int, int] | None] = {
    "White": (255, 255, 255, 255),
    "Black": (0, 0, 0, 255),
    "Transparent": None,
}
PRESETS = ((512, 512), (768, 768), (1024, 1024), (768, 512), (512, 768), (1024, 576), (1920, 1080))


def add_ok_cancel(dialog: QDialog, form: QFormLayout) -> None:
    """The OK/Cancel row every small form dialog ends with."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    form.addRow(buttons)


def size_spin(value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(1, MAX_DOCUMENT_SIDE)
    spin.setSuffix(" px")
    spin.setValue(value)
    return spin


class SizeDialog(QDialog):
    """Width and height in pixels (canvas size, image size)."""

    def __init__(self, title: str, width: int, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        form = QFormLayout(self)
        self.width_box, self.height_box = size_spin(width), size_spin(height)
        form.addRow("Width", self.width_box)
        form.addRow("Height", self.height_box)
        add_ok_cancel(self, form)

    def size_value(self) -> tuple[int, int]:
        return self.width_box.value(), self.height_box.value()


class NewDocumentDialog(QDialog):
    """Asks for width, height (with common diffusion sizes as presets) and the background."""

    def __init__(self, parent: QWidget | None = None, width: int = 512, height: int = 512) -> None:
        super().__init__(parent)
        self.setWindowTitle("New document")
        self.preset = QComboBox()
        self.preset.addItem("Custom", None)
        for w, h in PRESETS:
            self.preset.addItem(f"{w} × {h}", (w, h))
        self.width_spin, self.height_spin = size_spin(width), size_spin(height)
        self.background = QComboBox()
        self.background.addItems(list(BACKGROUNDS))
        self.preset.activated.connect(self._apply_preset)
        form = QFormLayout(self)
        form.addRow("Preset", self.preset)
        form.addRow("Width", self.width_spin)
        form.addRow("Height", self.height_spin)
        form.addRow("Background", self.background)
        add_ok_cancel(self, form)

    def _apply_preset(self, index: int) -> None:
        size = self.preset.itemData(index)
        if size:
            self.width_spin.setValue(size[0])
            self.height_spin.setValue(size[1])

    def values(self) -> tuple[int, int, tuple[int, int, int, int] | None]:
        return self.width_spin.value(), self.height_spin.value(), BACKGROUNDS[self.background.currentText()]
