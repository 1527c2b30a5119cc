"""A form built only from a task's `param_specs`: one field per parameter, chosen by type and widget hint.

Plugins never ship widgets; the declaration (type, range, choices, hint) is all the form needs, so a
third-party task gets the same form as a built-in one. `values()` feeds `make_params`, which validates.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from diffedit.tasks.params import ParamError, ParamSpec
from diffedit.tasks.registry import SamplerInfo

INT_LIMIT = 2**31 - 1  # QSpinBox holds a C int
SLIDER_TICKS = 1000
RANDOM = "random"


def _row_box() -> QWidget:
    """A container for a field made of several widgets; fixed height, or the form stretches it."""
    box = QWidget()
    box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    return box


class Field:
    """One parameter's editor: `widget` goes in the form; value()/set_value() speak Python values."""

    def __init__(self, spec: ParamSpec, widget: QWidget) -> None:
        self.spec, self.widget = spec, widget
        tip = spec.help or spec.label
        widget.setToolTip(tip)
        for child in widget.findChildren(QWidget):
            if not child.toolTip():
                child.setToolTip(tip)

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError


class IntField(Field):
    def __init__(self, spec: ParamSpec) -> None:
        self.spin = QSpinBox()
        low = -INT_LIMIT if spec.minimum is None else max(int(spec.minimum), -INT_LIMIT)
        high = INT_LIMIT if spec.maximum is None else min(int(spec.maximum), INT_LIMIT)
        self.spin.setRange(low, high)
        self.spin.setSingleStep(int(spec.step or 1))
        super().__init__(spec, self.spin)
        self.set_value(spec.default)

    def value(self) -> int:
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        self.spin.setValue(int(value or 0))


class FloatField(Field):
    def __init__(self, spec: ParamSpec) -> None:
        self.spin = QDoubleSpinBox()
        low = -1e9 if spec.minimum is None else float(spec.minimum)
        high = 1e9 if spec.maximum is None else float(spec.maximum)
        small = high - low <= 2
        self.spin.setDecimals(3 if small else 2)
        self.spin.setRange(low, high)
        self.spin.setSingleStep(float(spec.step or (0.05 if small else 0.5)))
        super().__init__(spec, self.spin)
        self.set_value(spec.default)

    def value(self) -> float:
        return self.spin.value()

    def set_value(self, value: Any) -> None:
        self.spin.setValue(float(value or 0.0))


class SliderField(Field):
    """A slider for quick changes next to a spin box for exact values (needs a minimum and maximum)."""

    def __init__(self, spec: ParamSpec) -> None:
        self.number: IntField | FloatField = IntField(spec) if spec.type is int else FloatField(spec)
        self.low, self.high = float(spec.minimum or 0), float(spec.maximum or 1)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_TICKS)
        box = _row_box()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.number.spin)
        self.slider.valueChanged.connect(self._slid)
        self.number.spin.valueChanged.connect(self._typed)
        super().__init__(spec, box)
        self._typed()

    def _slid(self, tick: int) -> None:
        value = self.low + (self.high - self.low) * tick / SLIDER_TICKS
        if abs(value - self.number.value()) > (self.high - self.low) / SLIDER_TICKS / 2:
            self.number.set_value(round(value) if self.spec.type is int else value)

    def _typed(self) -> None:
        span = self.high - self.low or 1.0
        self.slider.blockSignals(True)
        self.slider.setValue(round((self.number.value() - self.low) / span * SLIDER_TICKS))
        self.slider.blockSignals(False)

    def value(self) -> Any:
        return self.number.value()

    def set_value(self, value: Any) -> None:
        self.number.set_value(value)


class ChoiceField(Field):
    """A combo box; item data are the Python values (choices, sampler names, class names)."""

    def __init__(self, spec: ParamSpec, options: Sequence[tuple[str, Any]] = ()) -> None:
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(8)  # long sampler names must not widen the dock
        super().__init__(spec, self.combo)
        self.set_options(options or [(str(c), c) for c in spec.choices or ()])
        self.set_value(spec.default)

    def set_options(self, options: Sequence[tuple[str, Any]]) -> None:
        """Replace the items, keeping the current value when it is still offered."""
        current = self.value() if self.combo.count() else None
        self.combo.blockSignals(True)
        self.combo.clear()
        for label, data in options:
            self.combo.addItem(label, data)
        self.combo.blockSignals(False)
        if current is not None and self.combo.findData(current) >= 0:
            self.set_value(current)

    def values_offered(self) -> list[Any]:
        return [self.combo.itemData(i) for i in range(self.combo.count())]

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        index = self.combo.findData(value)
        if index < 0 and value not in (None, ""):  # e.g. a recorded class the chosen model lacks
            self.combo.addItem(f"{value} (not offered)", value)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(max(index, 0))


class PromptField(Field):
    def __init__(self, spec: ParamSpec) -> None:
        self.text = QPlainTextEdit()
        self.text.setPlaceholderText(spec.help)
        self.text.setTabChangesFocus(True)
        self.text.setFixedHeight(self.text.fontMetrics().lineSpacing() * 3 + 12)
        super().__init__(spec, self.text)
        self.set_value(spec.default)

    def value(self) -> str:
        return self.text.toPlainText()

    def set_value(self, value: Any) -> None:
        self.text.setPlainText("" if value is None else str(value))


def _dice_text(button: QWidget) -> str:
    """A die glyph the button's font really has (an emoji font is often missing), else a word."""
    metrics = QFontMetrics(button.font())
    return next((c for c in ("🎲", "⚄") if metrics.inFontUcs4(ord(c))), "Dice")


class SeedField(Field):
    """A number, or empty / 'random' for a new seed each run (None); the dice picks one to keep."""

    def __init__(self, spec: ParamSpec) -> None:
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(RANDOM)
        self.dice = QToolButton()
        self.dice.setText(_dice_text(self.dice))
        self.dice.setToolTip("Pick a random seed and keep it (clear the field for a new seed every run)")
        self.dice.clicked.connect(lambda: self.set_value(secrets.randbelow(2**31)))
        box = _row_box()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(self.dice)
        super().__init__(spec, box)
        self.set_value(spec.default)

    def value(self) -> int | None:
        text = self.edit.text().strip()
        if text.lower() in ("", RANDOM):
            return None
        if not text.isdigit():
            raise ParamError(f"{self.spec.label}: give a whole number, or leave it empty for a random seed")
        return int(text)

    def set_value(self, value: Any) -> None:
        self.edit.setText("" if value is None else str(value))


class BoolField(Field):
    def __init__(self, spec: ParamSpec) -> None:
        self.check = QCheckBox()
        super().__init__(spec, self.check)
        self.set_value(spec.default)

    def value(self) -> bool:
        return self.check.isChecked()

    def set_value(self, value: Any) -> None:
        self.check.setChecked(bool(value))


class TextField(Field):
    """Free text, and the fallback for any other type (an empty optional value means None)."""

    def __init__(self, spec: ParamSpec) -> None:
        self.edit = QLineEdit()
        super().__init__(spec, self.edit)
        self.set_value(spec.default)

    def value(self) -> Any:
        text = self.edit.text()
        return None if self.spec.optional and not text.strip() else text

    def set_value(self, value: Any) -> None:
        self.edit.setText("" if value is None else str(value))


def sampler_options(samplers: dict[str, SamplerInfo]) -> list[tuple[str, Any]]:
    return [("Model default", ""), *((info.label, name) for name, info in samplers.items())]


def class_options(names: Sequence[str]) -> list[tuple[str, Any]]:
    return [("Any (unconditioned)" if names else "— (no classes)", ""), *((n, n) for n in names)]


def make_field(spec: ParamSpec, samplers: dict[str, SamplerInfo]) -> Field:
    """The editor for one parameter, by widget hint first, then by type."""
    if spec.widget == "sampler":
        return ChoiceField(spec, sampler_options(samplers))
    if spec.widget == "seed":
        return SeedField(spec)
    if spec.widget == "class":
        return ChoiceField(spec, class_options([]))
    if spec.widget == "prompt":
        return PromptField(spec)
    if spec.choices:
        return ChoiceField(spec)
    if spec.type is bool:
        return BoolField(spec)
    numeric = spec.type in (int, float) and not spec.optional
    if numeric and spec.widget == "slider" and spec.minimum is not None and spec.maximum is not None:
        return SliderField(spec)
    if numeric:
        return IntField(spec) if spec.type is int else FloatField(spec)
    return TextField(spec)


class ParamForm(QWidget):
    """The fields of one task's parameters, in declaration order."""

    changed = Signal()

    def __init__(self, specs: Sequence[ParamSpec], samplers: dict[str, SamplerInfo],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs = list(specs)
        self.fields: dict[str, Field] = {}
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        layout = QFormLayout()
        outer.addLayout(layout)
        outer.addStretch(1)  # rows stay together at the top of a tall dock
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for spec in self.specs:
            field = make_field(spec, samplers)
            field.widget.setObjectName(f"param-{spec.name}")
            self.fields[spec.name] = field
            layout.addRow(spec.label, field.widget)

    def values(self) -> dict[str, Any]:
        """Every field's value (ParamError for text that is not a value at all, like a seed 'abc')."""
        return {name: field.value() for name, field in self.fields.items()}

    def set_values(self, values: dict[str, Any]) -> list[str]:
        """Fill fields from a dict (a generation record); returns the names this form does not have."""
        unknown = []
        for name, value in values.items():
            if name in self.fields:
                self.fields[name].set_value(value)
            else:
                unknown.append(name)
        return unknown

    def set_class_names(self, names: Sequence[str]) -> None:
        """Offer the chosen model's classes in every 'class' field."""
        for field in self.fields.values():
            if field.spec.widget == "class" and isinstance(field, ChoiceField):
                field.set_options(class_options(names))
                field.combo.setEnabled(bool(names))
