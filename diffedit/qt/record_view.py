"""How the selected layer was made: its generation record, and a button to run it again.

The record is what makes a result reproducible (task, model, sampler, steps, seed, parameters), so
the editor shows it next to the task form that can take it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from diffedit.document.layers import Layer
from diffedit.document.records import GenerationRecord

MAX_VALUE_CHARS = 80
MAX_HEIGHT = 150  # pixels of record rows before they scroll


def _short(value: Any) -> str:
    text = str(value) if value not in (None, "") else "—"
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


class RecordView(QGroupBox):
    """Shows one layer's record; `run_again(record)` asks the task panel to repeat it."""

    run_again = Signal(object)  # GenerationRecord

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Generation record", parent)
        self.setObjectName("record-view")
        self.record: GenerationRecord | None = None
        self.empty_label = QLabel("The selected layer was not made by a task.")
        self.empty_label.setWordWrap(True)
        self.empty_label.setEnabled(False)
        self.fields = QWidget()
        self.form = QFormLayout(self.fields)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea()  # a long record scrolls instead of squeezing the task form
        self.scroll.setWidget(self.fields)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMaximumHeight(MAX_HEIGHT)
        self.scroll.setMinimumHeight(MAX_HEIGHT * 2 // 3)
        self.run_again_button = QPushButton("Run again with these settings")
        self.run_again_button.setToolTip("Fill the task form from this record (same model, sampler, steps, "
                                         "seed and parameters) and run it on the current image")
        self.run_again_button.clicked.connect(self._run_again)
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.scroll)
        layout.addWidget(self.run_again_button)
        self.show_layer(None)

    def show_layer(self, layer: Layer | None) -> None:
        self.show_record(layer.record if layer is not None else None)

    def show_record(self, record: GenerationRecord | None) -> None:
        self.record = record
        while self.form.rowCount():
            self.form.removeRow(0)
        self.empty_label.setVisible(record is None)
        self.scroll.setVisible(record is not None)
        self.run_again_button.setEnabled(record is not None)
        if record is None:
            return
        rows: list[tuple[str, Any]] = [
            ("Task", record.task),
            ("Model", Path(record.model).name if record.model else ""),
            ("Sampler", record.sampler),
            ("Steps", record.steps),
            ("Seed", record.seed),
        ]
        rows += [(k.replace("_", " ").capitalize(), v) for k, v in record.params.items() if v not in ("", None)]
        for name, value in rows:
            label = QLabel(_short(value))
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setObjectName(f"record-{name.lower()}")
            if name == "Model":
                label.setToolTip(f"{record.model}\nSHA-256 {record.model_hash}" if record.model_hash else record.model)
            self.form.addRow(name, label)

    def value_text(self, name: str) -> str:
        """The shown text of one row ("Seed", "Steps", ...), for tests and accessibility."""
        for row in range(self.form.rowCount()):
            label = self.form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            field = self.form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            if label is not None and field is not None and label.widget().text() == name:
                return field.widget().text()
        raise KeyError(name)

    def _run_again(self) -> None:
        if self.record is not None:
            self.run_again.emit(self.record)
