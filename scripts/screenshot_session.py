"""A scripted editor session that saves screenshots: `.venv/bin/python scripts/screenshot_session.py OUTDIR`.

Without a DISPLAY it starts `Xvfb :95` (installed separately; nothing is installed here) and kills it at
the end. Inside the app it opens resources/samples/chelsea.png, paints an inpainting-mask stroke over the
cat's eye with the mask tool, selects the Inpaint task and shows its form, saving a `QWidget.grab()` of
the window after each step, plus a root-window capture with ImageMagick's `import` when available.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISPLAY = ":95"


def start_xvfb() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        return None
    proc = subprocess.Popen(
        ["Xvfb", DISPLAY, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if Path(f"/tmp/.X11-unix/X{DISPLAY[1:]}").exists():
            break
        time.sleep(0.1)
    os.environ["DISPLAY"] = DISPLAY
    return proc


def noisy_sample(out: Path, sigma: float = 25.0) -> Path:
    """chelsea.png with Gaussian noise (seeded), for the restore screenshots."""
    import numpy as np
    from PIL import Image

    clean = np.asarray(Image.open(ROOT / "resources" / "samples" / "chelsea.png").convert("RGB"), np.float32)
    noisy = clean + np.random.default_rng(0).normal(0, sigma, clean.shape)
    path = out / "chelsea-noisy.png"
    Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)).save(path)
    return path


def session(out: Path, run_task: bool = False, restore: bool = False) -> list[Path]:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from diffedit.qt.main_window import MainWindow
    from diffedit.qt.tools import Tool

    app = QApplication.instance() or QApplication(["diffedit"])
    win = MainWindow()
    win.maybe_discard = lambda: True  # the scripted edits are not worth a save prompt
    win.resize(1280, 800)
    win.move(0, 0)
    win.show()
    shots: list[Path] = []

    def settle(seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def shot(name: str) -> None:
        settle()
        path = out / f"{name}.png"
        win.grab().save(str(path))
        shots.append(path)
        if shutil.which("import") and os.environ.get("DISPLAY") == DISPLAY:
            root = out / f"{name}-root.png"
            subprocess.run(["import", "-display", DISPLAY, "-window", "root", str(root)], check=False, timeout=30)
            if root.exists():
                shots.append(root)

    settle(0.8)
    shot("01-start")
    win.open_path(str(ROOT / "resources" / "samples" / "chelsea.png"))
    shot("02-opened")

    canvas = win.canvas
    win.tools.set_tool(Tool.MASK)
    win.tools.update_settings(size=28.0)
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton

    def send(kind, x: float, y: float, button, buttons) -> None:
        pos = QPointF(canvas.doc_to_widget(x, y))
        ev = QMouseEvent(kind, pos, canvas.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(canvas, ev)

    # chelsea.png is 451x300; the eye on the viewer's left is near (174, 115).
    eye = [(156 + i * 2.3, 112 - 6 * (1 - ((i - 8) / 8) ** 2)) for i in range(17)]
    send(QEvent.Type.MouseButtonPress, *eye[0], left, left)
    for p in eye[1:] + list(reversed(eye))[1:]:
        send(QEvent.Type.MouseMove, p[0], p[1] + 6, none, left)
    send(QEvent.Type.MouseButtonRelease, *eye[0], left, none)
    shot("03-mask")

    win.task_panel.select_task("inpaint")
    win.task_panel.show()
    win.task_panel.raise_()
    shot("04-inpaint-form")

    if run_task:  # run it with the model the panel chose (the shipped repair model by default)
        panel = win.task_panel
        panel.run_button.click()
        end = time.monotonic() + 300
        while time.monotonic() < end and panel.queue.busy:
            settle(0.5)
            if any(la.name.startswith("Inpainted") for la in win.doc.layers):
                break
        settle(1.0)
        shot("05-inpainted")
        win.canvas.set_mask_shown(False)
        shot("06-inpainted-mask-hidden")

    if restore:  # denoise a noisy copy with the shipped repair model and the self-ensemble
        win.open_path(str(noisy_sample(out)))
        panel = win.task_panel
        panel.select_task("restore")
        assert panel.form is not None
        panel.form.set_values({"ensemble": True})
        shot("07-restore-form")
        panel.run_button.click()
        end = time.monotonic() + 300
        while time.monotonic() < end and panel.queue.busy:
            settle(0.5)
        settle(1.0)
        shot("08-restored")

    win.close()
    settle(0.2)
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="folder for the screenshots")
    parser.add_argument("--run", action="store_true", help="also run the inpaint task and capture the result")
    parser.add_argument("--restore", action="store_true",
                        help="also denoise a noisy copy of the sample with the self-ensemble and capture it")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    xvfb = start_xvfb()
    try:
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
        shots = session(args.out, args.run, args.restore)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(timeout=10)
    for path in shots:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
