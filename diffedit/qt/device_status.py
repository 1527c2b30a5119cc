"""The status bar's device label ("CPU", "CUDA"), probed in the background once the window is shown.

Asking torch which device runs means importing torch (a second or more), so it never happens at
import or before the window is up; the answer is cached for every later window.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QLabel, QWidget

from diffedit.qt.workers import HEAVY_IMPORT_LOCK, error_text
from diffedit.settings import Settings


def describe_device(preference: str) -> tuple[str, str]:
    """(short name, tooltip) of the device runs will use with this preference ("auto", "cpu", ...)."""
    with HEAVY_IMPORT_LOCK:
        import torch

        from diffedit.diffusion.devices import DeviceError, pick_device
    try:
        device = pick_device(preference)
    except DeviceError as exc:
        return "CPU?", f"The device setting '{preference}' cannot be used: {exc}"
    if device.type == "cuda":
        return "CUDA", f"Runs use the GPU {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    if device.type == "mps":
        return "MPS", "Runs use the Apple GPU (MPS)"
    return "CPU", f"Runs use the CPU ({torch.get_num_threads()} threads); no CUDA GPU was found"


class _Probe(QObject):
    """One per process: runs `describe_device` on a plain thread and keeps the answer."""

    ready = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self.result: tuple[str, str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            # not a daemon: the interpreter waits for it rather than killing it inside torch's import
            self._thread = threading.Thread(target=self._run, name="diffedit-device-probe")
            self._thread.start()

    def _run(self) -> None:
        try:
            self.result = describe_device(Settings.load().device)
        except Exception as exc:  # a broken torch install must not break the window
            self.result = ("?", f"The device could not be determined: {error_text(exc)}")
        self.ready.emit(*self.result)


_probe: _Probe | None = None


def probe() -> _Probe:
    global _probe
    if _probe is None:
        _probe = _Probe()
    return _probe


class DeviceLabel(QLabel):
    """Shows "Device: …" once known; the probe starts on the first show, never earlier."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Device: …", parent)
        self.setObjectName("device-label")
        self.setToolTip("Finding out which device runs tasks…")
        self.device = ""
        self._asked = False

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._asked:
            self._asked = True
            QTimer.singleShot(0, self._ask)

    def _ask(self) -> None:
        p = probe()
        if p.result is not None:
            self._show(*p.result)
            return
        p.ready.connect(self._show)
        p.start()
        if p.result is not None:  # answered between the check and the connection
            self._show(*p.result)

    def _show(self, name: str, tip: str) -> None:
        self.device = name
        self.setText(f"Device: {name}")
        self.setToolTip(tip)
