"""The model manager: scan and describe, add folders, import files and folders, fetch, remove."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from loopback import Served, write_checkpoint, write_sd_folder

from diffedit import model_manager as mm
from diffedit.diffusion.checkpoints import CheckpointError
from diffedit.downloads import DownloadError
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


def _hub_hashes(folder: Path) -> dict[str, tuple[str, str]]:
    from diffedit.downloads import _git_blob_sha1, file_sha256

    return {p.relative_to(folder).as_posix(): ("sha256", file_sha256(p)) if p.suffix == ".safetensors"
            else ("git-sha1", _git_blob_sha1(p)) for p in folder.rglob("*") if p.is_file()}


def test_fetch_a_catalogue_item_through_huggingface_hub(user_dirs: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    from diffedit import downloads

    expected = _hub_hashes(write_sd_folder(tmp_path / "on-the-hub"))
    calls = []

    def fake_snapshot(repo_id: str, revision: str | None, local_dir: str, allow_patterns: list[str] | None) -> str:
        calls.append((repo_id, revision, allow_patterns))
        write_sd_folder(Path(local_dir))
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setattr(downloads, "hf_expected_files", lambda repo, rev: ("abc123", expected))
    warnings: list[str] = []
    path = mm.fetch_item(mm.catalogue_item("sd2-inpainting"), warn=warnings.append)
    assert calls[0][:2] == ("stabilityai/stable-diffusion-2-inpainting", "abc123") and calls[0][2]
    info = mm.describe(path)
    assert info.source == "hf:stabilityai/stable-diffusion-2-inpainting@abc123" and info.license == "openrail++"
    assert warnings and "revision" in warnings[0] and not (path / ".cache").exists()


def test_a_snapshot_file_that_differs_from_the_hub_is_refused(user_dirs: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    from diffedit import downloads

    expected = _hub_hashes(write_sd_folder(tmp_path / "on-the-hub"))

    def tampered(repo_id: str, revision: str | None, local_dir: str, allow_patterns: list[str] | None) -> str:
        write_sd_folder(Path(local_dir))
        (Path(local_dir) / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"tampered")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", tampered)
    monkeypatch.setattr(downloads, "hf_expected_files", lambda repo, rev: ("abc123", expected))
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        mm.fetch_item(mm.catalogue_item("sd2-inpainting"))
    part = mm.user_models_dir() / ".sd2-inpainting.hf.part"  # kept, so a rerun fetches only the bad file
    assert [p.name for p in mm.user_models_dir().iterdir()] == [part.name]
    assert not (part / "unet" / "diffusion_pytorch_model.safetensors").exists() and (part / "README.md").is_file()


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
