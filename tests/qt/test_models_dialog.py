"""Tools > Models…: the table, add/import/remove, details, and downloads on a QThread (loopback only)."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMenu, QMessageBox

from diffedit import downloads
from diffedit import model_manager as mm
from diffedit.downloads import DownloadCancelled, HubFile
from diffedit.qt.models_dialog import COLUMNS, DownloadDialog, ModelsDialog
from diffedit.settings import Settings


def _checkpoint(folder: Path, task: str = "generate", **manifest) -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "scheduler").mkdir()
    data = {"manifest_version": 1, "task": task, "conditioning": "none", "image_size": 8, "channels": 3, **manifest}
    (folder / "diffedit.json").write_text(json.dumps(data))
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "in_channels": 3}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"w" * 100)
    (folder / "scheduler" / "scheduler_config.json").write_text("{}")
    return folder


@pytest.fixture
def dialog(qtbot, monkeypatch) -> ModelsDialog:
    monkeypatch.delenv("DIFFEDIT_MODEL_PATH", raising=False)
    monkeypatch.delenv("DIFFEDIT_MODELS_DIR", raising=False)
    d = ModelsDialog()
    qtbot.addWidget(d)
    yield d
    assert d.shutdown(5000)


def _row(d: ModelsDialog, name: str) -> list[str]:
    r = next(i for i, m in enumerate(d.models) if m.name == name)
    return [d.table.item(r, c).text() for c in range(len(COLUMNS))]


def test_add_a_folder_and_see_each_model(dialog: ModelsDialog, tmp_path: Path, qtbot) -> None:
    _checkpoint(tmp_path / "shared" / "faces", "inpaint", license="mit", source="lab")
    with qtbot.waitSignal(dialog.models_changed):
        assert dialog.add_folder(str(tmp_path / "shared"))
    row = _row(dialog, "faces")
    assert row[1] == "inpaint" and row[3] == "lab" and row[4] == "mit" and row[2].endswith("B")
    assert str((tmp_path / "shared").resolve()) in Settings.load().model_folders
    assert dialog.select("faces") and dialog.buttons["Details"].isEnabled()
    assert "License: mit" in dialog.details_text(dialog.selected())
    dialog.show_details()
    dialog.details_box.close()
    assert not dialog.add_folder(str(tmp_path / "missing")) and "not a folder" in dialog.status.text()


def test_import_then_remove(dialog: ModelsDialog, tmp_path: Path, monkeypatch) -> None:
    assert dialog.import_folder(str(_checkpoint(tmp_path / "src" / "mine")))
    assert "mine" in [m.name for m in dialog.models] and dialog.select("mine")
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.No)
    assert not dialog.remove_selected() and (mm.user_models_dir() / "mine").is_dir()
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    assert dialog.remove_selected() and not (mm.user_models_dir() / "mine").exists()
    assert "mine" not in [m.name for m in dialog.models]
    assert not dialog.import_file(str(tmp_path / "src" / "mine")) and "Failed" in dialog.status.text()


def _slow_job(progress, token) -> Path:
    for i in range(500):
        if token.cancelled:
            raise DownloadCancelled("cancelled")
        progress(i * 1000, 500_000)
        time.sleep(0.01)
    raise AssertionError("was not cancelled")


def test_a_download_can_be_cancelled_from_the_progress_dialog(dialog: ModelsDialog, qtbot) -> None:
    with qtbot.waitSignal(dialog.download_done, timeout=10000) as done:
        dialog.start_download("slow", _slow_job)
        assert dialog.downloading and not dialog.buttons["Download"].isEnabled()
        qtbot.waitUntil(lambda: dialog.progress_dialog is not None and dialog.progress_dialog.value() > 0)
        dialog.progress_dialog.canceled.emit()  # what its Cancel button sends
    assert done.args == ["cancelled"], dialog.status.text()
    assert not dialog.downloading and dialog.progress_dialog is None
    assert "resumes" in dialog.status.text()


def test_a_failed_download_says_why(dialog: ModelsDialog, qtbot) -> None:
    def failing(progress, token) -> Path:
        raise RuntimeError("SHA-256 mismatch (test)")

    with qtbot.waitSignal(dialog.download_done, timeout=10000) as done:
        dialog.start_download("bad", failing)
    assert done.args == ["failed"] and "SHA-256 mismatch" in dialog.status.text()


def test_download_a_url_with_its_sha256(dialog: ModelsDialog, tmp_path: Path, qtbot) -> None:
    src = _checkpoint(tmp_path / "served" / "remote")
    archive = tmp_path / "site" / "remote.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        for f in src.rglob("*"):
            z.write(f, f.relative_to(src))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(archive.parent))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        form = DownloadDialog(dialog)
        qtbot.addWidget(form)
        assert form.choice.count() == len(form.catalogue) + 1 and "apache-2.0" in form.choice.itemText(0)
        form.choice.setCurrentIndex(form.choice.count() - 1)
        form.url_edit.setText(f"http://127.0.0.1:{httpd.server_address[1]}/remote.zip")
        form.sha_edit.setText("nope")
        form._accept()
        assert "64 hex" in form.error.text() and form.result() == 0
        form.sha_edit.setText(hashlib.sha256(archive.read_bytes()).hexdigest())
        with qtbot.waitSignal(dialog.download_done, timeout=10000) as done:
            dialog.start_download(*form.job())
        assert done.args == ["finished"], dialog.status.text()
        assert dialog.selected() is not None and dialog.selected().name == "remote"
        assert dialog.selected().source.startswith("http://127.0.0.1")
    finally:
        httpd.shutdown()
        httpd.server_close()


HF_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture
def hf_site(tmp_path: Path, monkeypatch) -> Iterator[dict[str, bytes]]:
    """google/ddpm-cifar10-32 on a loopback "hub": its listing stubbed, its resolve URLs served."""
    from huggingface_hub import constants

    files = {"model_index.json": json.dumps({"_class_name": "DDPMPipeline"}).encode(),
             "scheduler/scheduler_config.json": b'{"_class_name": "DDPMScheduler"}',
             "unet/config.json": json.dumps({"_class_name": "UNet2DModel", "sample_size": 32}).encode(),
             HF_WEIGHTS: bytes(range(256)) * 16384}  # 4 MiB: 64 chunks
    commit = "f" * 40
    listing = []
    for path, body in files.items():
        target = tmp_path / "hub" / "google" / "ddpm-cifar10-32" / "resolve" / commit / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        listing.append(HubFile(path, len(body), "sha256", hashlib.sha256(body).hexdigest()))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "hub"))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setattr(downloads, "hf_repo_files", lambda *a: (commit, sorted(listing, key=lambda f: f.path)))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    yield files
    httpd.shutdown()
    httpd.server_close()


def test_a_hugging_face_download_cancels_mid_file_and_resumes(dialog: ModelsDialog, hf_site, qtbot) -> None:
    item = mm.catalogue_item("ddpm-cifar10-32")
    small = sum(len(body) for path, body in hf_site.items() if path != HF_WEIGHTS)

    def slowly(progress, token) -> Path:  # time for the GUI to see progress and press Cancel
        def report(done: int, total: int | None) -> None:
            progress(done, total)
            time.sleep(0.02)

        return mm.fetch_item(item, None, report, token)

    with qtbot.waitSignal(dialog.download_done, timeout=20000) as done:
        dialog.start_download(item.name, slowly)
        qtbot.waitUntil(lambda: dialog.progress_dialog is not None
                        and dialog.progress_dialog.value() > (small + (1 << 17)) // 1024)
        dialog.progress_dialog.canceled.emit()
    assert done.args == ["cancelled"], dialog.status.text()
    part = mm.user_models_dir() / ".ddpm-cifar10-32.hf.part" / (HF_WEIGHTS + ".part")
    assert 0 < part.stat().st_size < len(hf_site[HF_WEIGHTS]) and not (mm.user_models_dir() / item.name).exists()
    form = DownloadDialog(dialog)
    qtbot.addWidget(form)
    form.choice.setCurrentIndex(form.choice.findData(item.name))
    with qtbot.waitSignal(dialog.download_done, timeout=20000) as done:
        dialog.start_download(*form.job())
    assert done.args == ["finished"], dialog.status.text()
    chosen = dialog.selected()
    assert chosen is not None and chosen.name == item.name and chosen.source == f"hf:{item.repo}@{'f' * 40}"
    assert (chosen.path / HF_WEIGHTS).read_bytes() == hf_site[HF_WEIGHTS]


def test_tools_menu_opens_the_models_dialog(window, qtbot) -> None:
    bar = window.menuBar()
    menu = next(m for m in bar.findChildren(QMenu) if m.title().replace("&", "") == "Tools")
    action = next(a for a in menu.actions() if a.text().replace("&", "") == "Models…")
    action.trigger()
    first = window.models_dialog
    assert isinstance(first, ModelsDialog) and first.isVisible()
    action.trigger()
    assert window.models_dialog is first
    first.close()
