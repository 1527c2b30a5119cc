"""The model manager: scan and describe, add folders, import files and folders, fetch, remove."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from loopback import PAYLOAD, Served, publish_repo, write_checkpoint, write_sd_folder

from diffedit import model_manager as mm
from diffedit.diffusion.checkpoints import CheckpointError
from diffedit.downloads import CancelToken, DownloadCancelled, DownloadError
from diffedit.settings import Settings


def _mine(infos: list[mm.ModelInfo], root: Path) -> dict[str, mm.ModelInfo]:
    return {i.name: i for i in infos if i.path.resolve().is_relative_to(root.resolve())}


def test_scan_lists_each_model_with_task_size_source_license_and_hash(user_dirs: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    weights = b"\x01" * 1000
    write_checkpoint(folder / "faces", "inpaint", weights, license="mit", source="https://example.org/faces",
                     tasks=["restore"], made={"weights_sha256": {"unet/x.safetensors": "AB" * 32}})
    write_checkpoint(folder / "plain", weights=weights)
    write_sd_folder(folder / "sd-inpaint")
    (folder / "not-a-model").mkdir()
    mm.add_folder(folder)
    assert Settings.load().model_folders == [str(folder.resolve())]
    found = _mine(mm.scan(), folder)
    assert sorted(found) == ["faces", "plain", "sd-inpaint"]
    faces, plain, sd = found["faces"], found["plain"], found["sd-inpaint"]
    assert faces.tasks == ["inpaint", "restore"] and faces.kind == "diffedit"
    assert (faces.license, faces.source, faces.sha256) == ("mit", "https://example.org/faces", "ab" * 32)
    assert faces.size == mm.folder_size(faces.path) > 1000
    assert (plain.source, plain.license, plain.sha256) == ("local", "", None)
    assert mm.describe(plain.path, compute_hash=True).sha256 == hashlib.sha256(weights).hexdigest()
    assert (sd.kind, sd.tasks, sd.license) == ("stable-diffusion", ["inpaint"], "openrail++")
    assert not faces.managed and faces.folder == folder.resolve()
    mm.add_folder(folder)  # twice: listed once
    assert len(Settings.load().model_folders) == 1


def test_add_folder_refuses_what_is_not_a_folder(user_dirs: Path, tmp_path: Path) -> None:
    with pytest.raises(mm.ModelError, match="not a folder"):
        mm.add_folder(tmp_path / "nowhere")


def test_import_a_folder_copies_it_into_the_user_models_folder(user_dirs: Path, tmp_path: Path) -> None:
    src = write_checkpoint(tmp_path / "src" / "mine", license="cc-by-4.0")
    path = mm.import_folder(src)
    assert path == mm.user_models_dir().resolve() / "mine" and (path / "unet" / "config.json").is_file()
    assert str(mm.user_models_dir().resolve()) in Settings.load().model_folders
    info = _mine(mm.scan(), mm.user_models_dir())["mine"]
    assert info.managed and info.source == f"imported from {src}" and info.license == "cc-by-4.0"
    with pytest.raises(mm.ModelError, match="already exists"):
        mm.import_folder(src)
    for bad in ("../escape", ".hidden", "a/b"):
        with pytest.raises(mm.ModelError, match="not a usable"):
            mm.import_folder(src, name=bad)
    assert [p.name for p in mm.user_models_dir().iterdir()] == ["mine"]  # no staging left behind


def test_import_refuses_a_broken_checkpoint_and_leaves_nothing(user_dirs: Path, tmp_path: Path) -> None:
    src = write_checkpoint(tmp_path / "bad")
    (src / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "in_channels": 5}))
    with pytest.raises(CheckpointError, match="in_channels"):
        mm.import_folder(src)
    with pytest.raises(mm.ModelError, match="neither"):
        mm.import_folder(tmp_path)
    assert not mm.user_models_dir().exists() or list(mm.user_models_dir().iterdir()) == []


def test_import_a_diffusers_folder_and_files(user_dirs: Path, tmp_path: Path) -> None:
    sd = mm.import_folder(write_sd_folder(tmp_path / "sd"), name="sd2")
    assert mm.describe(sd).tasks == ["inpaint"]
    # a .zip of a checkpoint folder (wrapped in one folder, as archives often are)
    src = write_checkpoint(tmp_path / "zipped")
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in src.rglob("*"):
            z.write(f, Path("zipped") / f.relative_to(src))
    assert mm.describe(mm.import_file(archive)).kind == "diffedit"
    # a diffedit.json names its folder; a lone weights file is refused with advice
    assert mm.import_file(src / "diffedit.json", name="again").name == "again"
    with pytest.raises(mm.ModelError, match=r"config\.json"):
        mm.import_file(src / "unet" / "diffusion_pytorch_model.safetensors")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.txt", "x")
    with pytest.raises(mm.ModelError, match="outside"):
        mm.import_file(evil)
    assert sorted(p.name for p in mm.user_models_dir().iterdir()) == ["again", "sd2", "zipped"]


def test_remove_deletes_only_managed_models_and_forgets_folders(user_dirs: Path, tmp_path: Path) -> None:
    mine = mm.import_folder(write_checkpoint(tmp_path / "src" / "mine"))
    outside = tmp_path / "elsewhere"
    write_checkpoint(outside / "theirs")
    mm.add_folder(outside)
    with pytest.raises(mm.ModelError, match="not deleted"):
        mm.remove("theirs")
    assert "deleted" in mm.remove("mine") and not mine.exists()
    assert "kept" in mm.remove(str(outside)) and (outside / "theirs").is_dir()
    assert str(outside.resolve()) not in Settings.load().model_folders
    with pytest.raises(mm.ModelError, match="no model named"):
        mm.remove("ghost")


def test_the_catalogue_lists_known_models_without_invented_hashes() -> None:
    items = {i.name: i for i in mm.load_catalogue()}
    assert {"ddpm-cifar10-32", "ddpm-celebahq-256", "sd2-inpainting", "sd-x4-upscaler"} <= set(items)
    assert items["sd-x4-upscaler"].repo == "stabilityai/stable-diffusion-x4-upscaler"
    for item in items.values():
        assert item.license and item.tasks
        assert item.source == "hf" or (item.url and item.sha256 and len(item.sha256) == 64)
    with pytest.raises(mm.ModelError, match="not in the catalogue"):
        mm.catalogue_item("nope")


def _zip_bytes(folder: Path) -> bytes:
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as z:
        for f in folder.rglob("*"):
            z.write(f, f.relative_to(folder))
    return archive.read_bytes()


def test_fetch_a_url_with_a_pinned_sha256(user_dirs: Path, tmp_path: Path, http_server: Served) -> None:
    data = _zip_bytes(write_checkpoint(tmp_path / "remote", license="mit"))
    http_server.files["/remote.zip"] = data
    sha = hashlib.sha256(data).hexdigest()
    path = mm.fetch_url(http_server.url("/remote.zip"), sha)
    info = mm.describe(path)
    assert path.name == "remote" and info.source == http_server.url("/remote.zip") and info.managed
    assert sorted(p.name for p in mm.user_models_dir().iterdir()) == [".downloads", "remote"]
    assert list((mm.user_models_dir() / ".downloads").iterdir()) == []
    with pytest.raises(mm.ModelError, match="already exists"):
        mm.fetch_url(http_server.url("/remote.zip"), sha)
    http_server.corrupt = True
    with pytest.raises(DownloadError, match="mismatch"):
        mm.fetch_url(http_server.url("/remote.zip"), sha, name="other")
    assert not (mm.user_models_dir() / "other").exists()
    assert list((mm.user_models_dir() / ".downloads").iterdir()) == []


SD_REPO = "stabilityai/stable-diffusion-2-inpainting"
SD_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


def _publish_sd(served: Served, tmp_path: Path, weights: bytes = PAYLOAD * 4, commit: str = "abc123",
                listed: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """An SD inpainting repository on the fake hub, with files the catalogue's allow_patterns leave out."""
    folder = write_sd_folder(tmp_path / "on-the-hub")
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    files[SD_WEIGHTS] = weights
    extra = {"unet/diffusion_pytorch_model.bin": b"pickle", "v2.ckpt": b"ckpt"}
    publish_repo(served, SD_REPO, {**files, **extra}, commit, listed)
    return files


def test_fetch_a_catalogue_item_from_hugging_face(user_dirs: Path, tmp_path: Path, fake_hub: Served) -> None:
    files = _publish_sd(fake_hub, tmp_path)
    warnings: list[str] = []
    seen: list[tuple[int, int | None]] = []
    path = mm.fetch_item(mm.catalogue_item("sd2-inpainting"), progress=lambda d, t: seen.append((d, t)),
                         warn=warnings.append)
    info = mm.describe(path)
    assert info.source == f"hf:{SD_REPO}@abc123" and info.license == "openrail++"
    assert warnings and "revision" in warnings[0]
    fetched = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert fetched == {"model_index.json", SD_WEIGHTS, mm.SOURCE_FILE}  # README.md, .bin, .ckpt: not allowed
    assert (path / SD_WEIGHTS).read_bytes() == files[SD_WEIGHTS]
    assert seen[-1][0] == seen[-1][1] == len(files["model_index.json"]) + len(files[SD_WEIGHTS])
    assert [p.name for p in mm.user_models_dir().iterdir()] == ["sd2-inpainting"]


def test_a_hugging_face_fetch_cancels_mid_file_and_resumes(user_dirs: Path, tmp_path: Path,
                                                           fake_hub: Served) -> None:
    files = _publish_sd(fake_hub, tmp_path)
    token = CancelToken()
    with pytest.raises(DownloadCancelled):
        mm.fetch_item(mm.catalogue_item("sd2-inpainting"), cancel=token,
                      progress=lambda done, total: done > len(files["model_index.json"]) and token.cancel())
    part = mm.user_models_dir() / ".sd2-inpainting.hf.part"
    assert [p.name for p in mm.user_models_dir().iterdir()] == [part.name]
    kept = (part / (SD_WEIGHTS + ".part")).stat().st_size
    assert 0 < kept < len(files[SD_WEIGHTS]) and not (part / SD_WEIGHTS).exists()
    path = mm.fetch_item(mm.catalogue_item("sd2-inpainting"))
    assert (path / SD_WEIGHTS).read_bytes() == files[SD_WEIGHTS] and fake_hub.ranges[-1] == f"bytes={kept}-"
    assert [p.name for p in mm.user_models_dir().iterdir()] == ["sd2-inpainting"]


def test_a_fetch_that_was_not_placed_is_checked_not_downloaded_again(user_dirs: Path, tmp_path: Path,
                                                                      fake_hub: Served) -> None:
    files = _publish_sd(fake_hub, tmp_path)
    left = mm.user_models_dir() / ".sd2-inpainting.hf"  # downloaded, then the rename into place failed
    (left / "unet").mkdir(parents=True)
    (left / "model_index.json").write_bytes(files["model_index.json"])
    (left / SD_WEIGHTS).write_bytes(files[SD_WEIGHTS])
    (left / mm.SOURCE_FILE).write_text("{}")
    path = mm.fetch_item(mm.catalogue_item("sd2-inpainting"))
    assert [r for r, _ in fake_hub.requests if "/resolve/" in r] == []
    assert mm.describe(path).source == f"hf:{SD_REPO}@abc123"
    assert [p.name for p in mm.user_models_dir().iterdir()] == ["sd2-inpainting"]


def test_a_hub_file_that_differs_from_its_hash_is_refused(user_dirs: Path, tmp_path: Path, fake_hub: Served) -> None:
    _publish_sd(fake_hub, tmp_path, weights=b"tampered", listed={SD_WEIGHTS: b"the weights"})
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        mm.fetch_item(mm.catalogue_item("sd2-inpainting"))
    part = mm.user_models_dir() / ".sd2-inpainting.hf.part"  # kept, so a rerun fetches only the bad file
    assert [p.name for p in mm.user_models_dir().iterdir()] == [part.name]
    assert not (part / SD_WEIGHTS).exists() and (part / "model_index.json").is_file()
    assert not (part / (SD_WEIGHTS + ".part")).exists()


def test_an_unconditional_diffusers_pipeline_gets_a_manifest_on_import(user_dirs: Path, tmp_path: Path) -> None:
    from diffedit.diffusion.checkpoints import inspect_checkpoint

    src = tmp_path / "ddpm-cifar10-32"
    (src / "unet").mkdir(parents=True)
    (src / "scheduler").mkdir()
    (src / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    (src / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 32,
                                                          "in_channels": 3, "out_channels": 3}))
    (src / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickled weights")
    (src / "scheduler" / "scheduler_config.json").write_text(json.dumps({"_class_name": "DDPMScheduler"}))
    (src / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    path = mm.import_folder(src)
    manifest, parts = inspect_checkpoint(path)
    assert (manifest.task, manifest.image_size, parts.legacy) == ("generate", 32, True)
    info = mm.describe(path)
    assert info.tasks == ["generate"] and info.license == "apache-2.0" and info.source.startswith("imported from")
    assert not (src / "diffedit.json").exists()  # the source folder is left as it was
