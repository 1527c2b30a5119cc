"""diffedit.downloads against a loopback HTTP server: good, resumed, corrupted, dropped, cancelled."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopback import PAYLOAD, SHA, Served

from diffedit.downloads import CancelToken, DownloadCancelled, DownloadError, download, fetch_hf_repo


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_good_download_reports_progress_and_lands_whole(http_server: Served, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    path = download(http_server.url(), tmp_path / "w.bin", SHA, progress=lambda d, t: seen.append((d, t)))
    assert path.read_bytes() == PAYLOAD and _listing(tmp_path) == ["w.bin"]
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert http_server.ranges == [None]
    download(http_server.url(), path, SHA)  # already there with the right hash: no request
    assert http_server.ranges == [None]


def test_a_partial_part_file_is_resumed_with_a_range_request(http_server: Served, tmp_path: Path) -> None:
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD[:40_000])
    seen: list[tuple[int, int | None]] = []
    download(http_server.url(), tmp_path / "w.bin", SHA.upper(), progress=lambda d, t: seen.append((d, t)))
    assert http_server.ranges == ["bytes=40000-"]
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD and _listing(tmp_path) == ["w.bin"]
    assert seen[0] == (40_000, len(PAYLOAD))


def test_a_server_that_ignores_range_starts_again(http_server: Served, tmp_path: Path) -> None:
    http_server.honour_range = False
    (tmp_path / "w.bin.part").write_bytes(b"garbage that must not be kept")
    download(http_server.url(), tmp_path / "w.bin", SHA)
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD


def test_a_corrupted_download_is_rejected_and_nothing_is_left(http_server: Served, tmp_path: Path) -> None:
    http_server.corrupt = True
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download(http_server.url(), tmp_path / "w.bin", SHA)
    assert _listing(tmp_path) == []


def test_a_dropped_connection_keeps_the_part_file_and_a_rerun_resumes(http_server: Served, tmp_path: Path) -> None:
    http_server.cut_after = 30_000
    with pytest.raises(DownloadError, match="resume") as caught:
        download(http_server.url(), tmp_path / "w.bin", SHA)
    assert "30000 of 102400" in str(caught.value)
    assert _listing(tmp_path) == ["w.bin.part"] and (tmp_path / "w.bin.part").stat().st_size == 30_000
    http_server.cut_after = None
    download(http_server.url(), tmp_path / "w.bin", SHA)
    assert http_server.ranges == [None, "bytes=30000-"]
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD and _listing(tmp_path) == ["w.bin"]


def test_a_complete_part_file_is_verified_without_downloading_again(http_server: Served, tmp_path: Path) -> None:
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD)
    download(http_server.url(), tmp_path / "w.bin", SHA)  # the server answers 416
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD


def test_cancelling_stops_between_chunks_and_keeps_the_part_file(http_server: Served, tmp_path: Path) -> None:
    token = CancelToken()

    def progress(done: int, total: int | None) -> None:
        if done >= 8192:
            token.cancel()

    with pytest.raises(DownloadCancelled):
        download(http_server.url(), tmp_path / "w.bin", SHA, progress=progress, cancel=token, chunk=4096)
    assert _listing(tmp_path) == ["w.bin.part"] and 0 < (tmp_path / "w.bin.part").stat().st_size < len(PAYLOAD)
    download(http_server.url(), tmp_path / "w.bin", SHA)
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD


def test_bad_inputs_are_clear_errors(http_server: Served, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64 hex"):
        download(http_server.url(), tmp_path / "w.bin", "abc")
    with pytest.raises(DownloadError, match="http"):
        download("file:///etc/passwd", tmp_path / "w.bin", SHA)
    with pytest.raises(DownloadError, match="404"):
        download(http_server.url("/missing"), tmp_path / "w.bin", SHA)
    assert _listing(tmp_path) == []


def test_unreachable_server_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        download("http://127.0.0.1:9/none", tmp_path / "w.bin", SHA, timeout=2)


def test_hugging_face_needs_huggingface_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(DownloadError, match="pip install huggingface_hub"):
        fetch_hf_repo("google/ddpm-cifar10-32", tmp_path / "m")
    assert _listing(tmp_path) == []
