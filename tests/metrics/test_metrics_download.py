"""The downloader against a loopback HTTP server: resume, SHA-256 refusal, atomic result. No internet."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from diffedit.metrics.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    ranges: list[str | None] = []  # noqa: RUF012
    cut_after: int | None = None  # send only this many bytes (then close), to simulate a dropped link

    def do_GET(self) -> None:
        type(self).ranges.append(self.headers.get("Range"))
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: self.cut_after] if self.cut_after is not None else body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.ranges, _Handler.cut_after = [], None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/w.pth"
    httpd.shutdown()
    httpd.server_close()


def test_resumes_a_partial_download(server: str, tmp_path: Path) -> None:
    target = tmp_path / "w.pth"
    _Handler.cut_after = 30_000
    with pytest.raises(DownloadError, match="resume"):
        download(server, target, SHA)
    assert not target.exists() and (tmp_path / "w.pth.part").stat().st_size == 30_000
    _Handler.cut_after = None
    seen: list[tuple[int, int | None]] = []
    download(server, target, SHA, progress=lambda d, t: seen.append((d, t)))
    assert target.read_bytes() == PAYLOAD and not (tmp_path / "w.pth.part").exists()
    assert _Handler.ranges == [None, "bytes=30000-"]
    assert seen[0] == (30_000, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    download(server, target, SHA)  # already there with the right hash: no request
    assert len(_Handler.ranges) == 2


def test_refuses_a_hash_mismatch_and_keeps_the_old_file(server: str, tmp_path: Path) -> None:
    target = tmp_path / "w.pth"
    target.write_bytes(b"old")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download(server, target, "0" * 64)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["w.pth"]


def test_cli_fetch_uses_the_pinned_hash(server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from diffedit.commands.weights import main

    assert main(["fetch", "inception", "--url", server, "--dest", str(tmp_path / "i.pth"), "--quiet"]) == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err and not (tmp_path / "i.pth").exists()


def test_unreachable_server_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        download("http://127.0.0.1:9/none", tmp_path / "x", SHA, timeout=2)
