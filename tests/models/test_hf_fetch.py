"""fetch_hf_repo against a fake Hugging Face hub on a loopback server: the listing comes from
huggingface_hub's own model_info call, every file through diffedit's resumable downloader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopback import PAYLOAD, Served, publish_repo, start_server

from diffedit.downloads import CancelToken, DownloadCancelled, DownloadError, fetch_hf_repo, part_path

BIG = "unet/diffusion_pytorch_model.safetensors"
FILES = {
    "README.md": b"---\nlicense: apache-2.0\n---\n# a tiny model\n",
    "model_index.json": b'{"_class_name": "DDPMPipeline"}',
    "scheduler/scheduler_config.json": b'{"_class_name": "DDPMScheduler"}',
    "unet/config.json": b'{"_class_name": "UNet2DModel", "sample_size": 8}',
    BIG: PAYLOAD * 3,  # 307,200 bytes: many chunks
}
TOTAL = sum(map(len, FILES.values()))
SMALL = TOTAL - len(FILES[BIG])  # the files sorted before the weights


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _resolved(served: Served) -> list[str]:
    return [path for path, _ in served.requests if "/resolve/" in path]


def _hub_calls(served: Served) -> list[tuple[str, str | None]]:
    """Requests for the repository (huggingface_hub may also ask for its agent registry)."""
    return [(path, auth) for path, auth in served.requests if "/org/" in path]


def test_a_repository_is_fetched_file_by_file_checked_and_pinned(fake_hub: Served, tmp_path: Path) -> None:
    commit = publish_repo(fake_hub, "org/tiny", FILES)
    seen: list[tuple[int, int | None]] = []
    dest, got = fetch_hf_repo("org/tiny", tmp_path / "m", progress=lambda d, t: seen.append((d, t)))
    assert (dest, got) == (tmp_path / "m", commit)
    assert _tree(dest) == FILES and os.listdir(tmp_path) == ["m"]  # no fetch record, no .part left
    assert seen[-1] == (TOTAL, TOTAL) and {t for _, t in seen} == {TOTAL}
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # one count across all files
    assert _hub_calls(fake_hub)[0][0].startswith("/api/models/org/tiny")
    resolved = sorted(f"/org/tiny/resolve/{commit}/{p}" for p in FILES)  # the commit listed, not "main"
    assert sorted(_resolved(fake_hub)) == resolved
    assert {auth for _, auth in _hub_calls(fake_hub)} == {"Bearer hf_test_token"}


def test_allow_patterns_choose_the_files(fake_hub: Served, tmp_path: Path) -> None:
    commit = publish_repo(fake_hub, "org/tiny", FILES)
    dest, _ = fetch_hf_repo("org/tiny", tmp_path / "m", revision=commit, allow_patterns=["*.json"])
    assert set(_tree(dest)) == {"model_index.json", "scheduler/scheduler_config.json", "unet/config.json"}
    assert _hub_calls(fake_hub)[0][0].startswith(f"/api/models/org/tiny/revision/{commit}")
    with pytest.raises(DownloadError, match="no files"):
        fetch_hf_repo("org/tiny", tmp_path / "n", allow_patterns=["*.onnx"])


def test_cancel_mid_file_keeps_the_part_and_a_rerun_resumes(fake_hub: Served, tmp_path: Path) -> None:
    commit = publish_repo(fake_hub, "org/tiny", FILES)
    token = CancelToken()

    def progress(done: int, total: int | None) -> None:
        if done >= SMALL + 8192:
            token.cancel()

    with pytest.raises(DownloadCancelled, match="kept to resume"):
        fetch_hf_repo("org/tiny", tmp_path / "m", progress=progress, cancel=token, chunk=4096)
    staging = tmp_path / "m.part"
    assert os.listdir(tmp_path) == ["m.part"]  # the model folder is whole or absent
    assert 0 < part_path(staging / BIG).stat().st_size < len(FILES[BIG]) and not (staging / BIG).exists()
    assert all((staging / p).read_bytes() == body for p, body in FILES.items() if p != BIG)
    fake_hub.requests.clear()
    kept = part_path(staging / BIG).stat().st_size
    dest, _ = fetch_hf_repo("org/tiny", tmp_path / "m")
    assert _tree(dest) == FILES and os.listdir(tmp_path) == ["m"]
    assert _resolved(fake_hub) == [f"/org/tiny/resolve/{commit}/{BIG}"]  # whole files are only checked
    assert fake_hub.ranges[-1] == f"bytes={kept}-"


def test_a_cancel_before_the_start_asks_nothing(fake_hub: Served, tmp_path: Path) -> None:
    publish_repo(fake_hub, "org/tiny", FILES)
    token = CancelToken()
    token.cancel()
    with pytest.raises(DownloadCancelled):
        fetch_hf_repo("org/tiny", tmp_path / "m", cancel=token)
    assert _hub_calls(fake_hub) == [] and os.listdir(tmp_path) == []


def test_a_weights_file_that_differs_from_the_hub_is_deleted(fake_hub: Served, tmp_path: Path) -> None:
    tampered = bytearray(FILES[BIG])
    tampered[1000] ^= 0xFF
    publish_repo(fake_hub, "org/tiny", {**FILES, BIG: bytes(tampered)}, listed={BIG: FILES[BIG]})
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch_hf_repo("org/tiny", tmp_path / "m")
    staging = tmp_path / "m.part"
    assert os.listdir(tmp_path) == ["m.part"]
    assert not (staging / BIG).exists() and not part_path(staging / BIG).exists()
    assert (staging / "README.md").is_file()  # the good files stay for the next attempt


def test_a_small_file_is_checked_against_its_git_blob_id(fake_hub: Served, tmp_path: Path) -> None:
    config = FILES["unet/config.json"]
    served = {**FILES, "unet/config.json": config.upper()}  # same size, other bytes
    publish_repo(fake_hub, "org/tiny", served, listed={"unet/config.json": config})
    with pytest.raises(DownloadError, match="git blob id mismatch"):
        fetch_hf_repo("org/tiny", tmp_path / "m")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.part" / "unet" / "config.json").exists()


def test_a_new_commit_drops_old_parts_and_stray_files(fake_hub: Served, tmp_path: Path) -> None:
    publish_repo(fake_hub, "org/tiny", FILES, commit="a" * 40)
    token = CancelToken()
    with pytest.raises(DownloadCancelled):
        fetch_hf_repo("org/tiny", tmp_path / "m", progress=lambda d, t: d > SMALL and token.cancel(), cancel=token)
    (tmp_path / "m.part" / ".cache" / "huggingface").mkdir(parents=True)  # as huggingface_hub used to leave
    (tmp_path / "m.part" / ".cache" / "huggingface" / "x.lock").write_text("")
    newer = {**FILES, BIG: PAYLOAD[::-1] * 3}
    commit = publish_repo(fake_hub, "org/tiny", newer, commit="b" * 40)  # main moved on
    fake_hub.ranges.clear()
    dest, got = fetch_hf_repo("org/tiny", tmp_path / "m")
    assert got == commit and _tree(dest) == newer
    assert fake_hub.ranges[-1] is None  # the old part was not resumed


def test_a_file_name_outside_the_folder_is_refused(fake_hub: Served, tmp_path: Path) -> None:
    publish_repo(fake_hub, "org/tiny", {**FILES, "../escape.json": b"{}"})
    with pytest.raises(DownloadError, match="not a usable file name"):
        fetch_hf_repo("org/tiny", tmp_path / "m")
    assert os.listdir(tmp_path) == [] and _resolved(fake_hub) == []


def test_the_token_follows_same_host_redirects_only(fake_hub: Served, tmp_path: Path) -> None:
    cdn = Served(files={"/blob/weights": FILES[BIG]})
    httpd, thread = start_server(cdn)
    try:
        commit = publish_repo(fake_hub, "org/tiny", FILES)
        fake_hub.redirects[f"/org/tiny/resolve/{commit}/{BIG}"] = cdn.url("/blob/weights")
        fake_hub.redirects[f"/org/tiny/resolve/{commit}/README.md"] = fake_hub.url("/moved/README.md")
        fake_hub.files["/moved/README.md"] = FILES["README.md"]
        dest, _ = fetch_hf_repo("org/tiny", tmp_path / "m")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert _tree(dest) == FILES
    assert cdn.requests == [("/blob/weights", None)]
    assert ("/moved/README.md", "Bearer hf_test_token") in fake_hub.requests


def test_an_unknown_repository_is_a_clean_error(fake_hub: Served, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="org/none"):
        fetch_hf_repo("org/none", tmp_path / "m")
    assert os.listdir(tmp_path) == []


def test_offline_mode_stops_before_any_request(http_server: Served, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", http_server.base)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError, match="offline"):
        fetch_hf_repo("org/tiny", tmp_path / "m")
    assert http_server.requests == [] and os.listdir(tmp_path) == []


def test_a_file_listed_without_a_hash_is_refused(fake_hub: Served, tmp_path: Path) -> None:
    publish_repo(fake_hub, "org/tiny", FILES)
    listing = {"id": "org/tiny", "sha": "d" * 40, "siblings": [{"rfilename": "model_index.json", "size": 31}]}
    fake_hub.files["/api/models/org/tiny"] = json.dumps(listing).encode()
    with pytest.raises(DownloadError, match="no usable hash for model_index"):
        fetch_hf_repo("org/tiny", tmp_path / "m")
    assert os.listdir(tmp_path) == [] and _resolved(fake_hub) == []


def test_importing_the_downloader_does_not_import_huggingface_hub() -> None:
    code = "import sys, diffedit.model_manager, diffedit.downloads; print('huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
