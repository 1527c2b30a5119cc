"""`diffedit models list|add|fetch|remove` (new and info are covered in tests/diffusion)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from loopback import Served, publish_repo, write_checkpoint

from diffedit.commands.models import main
from diffedit.settings import Settings


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_and_remove(user_dirs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared = tmp_path / "shared"
    write_checkpoint(shared / "faces", "inpaint", license="mit")
    code, out, _ = _run(capsys, "add", str(shared))
    assert code == 0 and "added model folder" in out and "1 model(s)" in out
    code, out, _ = _run(capsys, "add", str(write_checkpoint(tmp_path / "src" / "mine")), "--name", "copied")
    assert code == 0 and out.startswith("imported ")
    code, out, _ = _run(capsys, "list", "--json", "--hash")
    rows = {r["name"]: r for r in json.loads(out) if r["path"].startswith(str(tmp_path))}
    assert set(rows) == {"faces", "copied"} and rows["faces"]["tasks"] == ["inpaint"]
    assert rows["faces"]["license"] == "mit" and len(rows["copied"]["sha256"]) == 64 and rows["copied"]["managed"]
    code, out, _ = _run(capsys, "list")
    assert code == 0 and "faces" in out and "inpaint" in out and "LICENSE" in out
    code, _, err = _run(capsys, "remove", "copied")  # stdin is not a terminal under pytest
    assert code == 1 and "--yes" in err
    code, out, _ = _run(capsys, "remove", "copied", "--yes")
    assert code == 0 and "deleted" in out
    code, _, err = _run(capsys, "remove", "faces", "--yes")
    assert code == 1 and "not deleted" in err and (shared / "faces").is_dir()
    code, out, _ = _run(capsys, "remove", str(shared))
    assert code == 0 and str(shared.resolve()) not in Settings.load().model_folders


def test_fetch_a_url(user_dirs: Path, tmp_path: Path, http_server: Served, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_checkpoint(tmp_path / "remote")
    archive = tmp_path / "remote.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in src.rglob("*"):
            z.write(f, f.relative_to(src))
    http_server.files["/remote.zip"] = archive.read_bytes()
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    url = http_server.url("/remote.zip")
    code, _, err = _run(capsys, "fetch", url)
    assert code == 1 and "--sha256" in err
    code, _, err = _run(capsys, "fetch", url, "--sha256", "0" * 64, "--quiet")
    assert code == 1 and "SHA-256 mismatch" in err
    http_server.cut_after = 100
    code, _, err = _run(capsys, "fetch", url, "--sha256", sha, "--quiet")
    assert code == 1 and "resume" in err
    http_server.cut_after = None
    code, out, err = _run(capsys, "fetch", url, "--sha256", sha)
    assert code == 0 and "fetched" in out and "remote" in out
    assert http_server.ranges[-1] == "bytes=100-"


def test_catalogue_and_bad_names(user_dirs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list", "--catalogue")
    assert code == 0 and "google/ddpm-cifar10-32" in out and "stabilityai/stable-diffusion-x4-upscaler" in out
    code, _, err = _run(capsys, "fetch", "no-such-model")
    assert code == 1 and "not in the catalogue" in err
    code, _, err = _run(capsys, "add", "/no/such/place")
    assert code == 1 and "not a folder" in err


def test_fetch_from_hugging_face_resumes(user_dirs: Path, fake_hub: Served, capsys: pytest.CaptureFixture[str]) -> None:
    weights = bytes(range(256)) * 1000
    files = {"model_index.json": json.dumps({"_class_name": "DDPMPipeline"}).encode(),
             "scheduler/scheduler_config.json": b'{"_class_name": "DDPMScheduler"}',
             "unet/config.json": json.dumps({"_class_name": "UNet2DModel", "sample_size": 32}).encode(),
             "unet/diffusion_pytorch_model.safetensors": weights}
    commit = publish_repo(fake_hub, "google/ddpm-cifar10-32", files)
    fake_hub.cut_after = 5000  # every file's connection drops after 5000 bytes: the small ones still arrive
    code, _, err = _run(capsys, "fetch", "ddpm-cifar10-32", "--quiet")
    assert code == 1 and "resume" in err
    fake_hub.cut_after = None
    code, out, err = _run(capsys, "fetch", "ddpm-cifar10-32")
    assert code == 0 and "fetched" in out and "google/ddpm-cifar10-32" in err
    assert fake_hub.ranges[-1] == "bytes=5000-"
    code, out, _ = _run(capsys, "list", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "ddpm-cifar10-32")
    assert row["tasks"] == ["generate"] and row["source"] == f"hf:google/ddpm-cifar10-32@{commit}"
