"""Helpers for the model tests: a loopback HTTP server (Range, corrupt and dropped-connection modes,
redirects), a fake Hugging Face hub on it, and tiny model folders. Nothing here reaches the internet."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Served:
    """What the server sends, and what it saw (Range headers per request)."""

    files: dict[str, bytes] = field(default_factory=lambda: {"/w.bin": PAYLOAD})
    redirects: dict[str, str] = field(default_factory=dict)  # path -> absolute URL (302)
    ranges: list[str | None] = field(default_factory=list)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization header)
    cut_after: int | None = None  # send this many body bytes, then drop the connection
    corrupt: bool = False  # flip one byte in the middle of the body
    honour_range: bool = True
    base: str = ""

    def url(self, path: str = "/w.bin") -> str:
        return self.base + path


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("Authorization")))
            if self.path in served.redirects:
                self.send_response(302)
                self.send_header("Location", served.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = served.files.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            header = self.headers.get("Range")
            served.ranges.append(header)
            start = int(header.split("=")[1].rstrip("-")) if header and served.honour_range else 0
            if start >= len(body) and start:
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            chunk = bytearray(body[start:])
            if served.corrupt and chunk:
                chunk[len(chunk) // 2] ^= 0xFF
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            self.wfile.write(bytes(chunk[: served.cut_after] if served.cut_after is not None else chunk))
            if served.cut_after is not None:
                self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def start_server(served: Served) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    served.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    return httpd, thread


def lfs_file(path: str) -> bool:
    """Which files the fake hub keeps in LFS (listed with a SHA-256); the rest are git blobs."""
    return path.endswith((".safetensors", ".bin"))


def publish_repo(served: Served, repo: str, files: dict[str, bytes], commit: str = "c0ffee" * 6 + "cafe",
                 listed: dict[str, bytes] | None = None) -> str:
    """Serve `files` as a Hugging Face repository at `commit` (also its main branch): the model_info
    API with file metadata, and the `resolve` URLs. `listed` overrides what the listing says a file
    holds (to serve bytes that differ from the hub's hashes)."""
    siblings = []
    for path, body in sorted({**files, **(listed or {})}.items()):
        entry: dict[str, Any] = {"rfilename": path, "size": len(body),
                                 "blobId": hashlib.sha1(f"blob {len(body)}\0".encode() + body).hexdigest()}
        if lfs_file(path):
            entry["lfs"] = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "pointerSize": 134}
            entry["blobId"] = hashlib.sha1(b"an lfs pointer").hexdigest()
        siblings.append(entry)
    info = json.dumps({"id": repo, "sha": commit, "siblings": siblings}).encode()
    for api in (f"/api/models/{repo}", f"/api/models/{repo}/revision/main", f"/api/models/{repo}/revision/{commit}"):
        served.files[api] = info
    for path, body in files.items():
        served.files[f"/{repo}/resolve/{commit}/{path}"] = body
    return commit


def write_checkpoint(folder: Path, task: str = "generate", weights: bytes = b"not really weights",
                     **manifest: Any) -> Path:
    """A minimal checkpoint folder that passes inspect_checkpoint (the weights are never loaded)."""
    (folder / "unet").mkdir(parents=True)
    (folder / "scheduler").mkdir()
    data = {"manifest_version": 1, "task": task, "conditioning": "none", "image_size": 8, "channels": 3, **manifest}
    (folder / "diffedit.json").write_text(json.dumps(data))
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "in_channels": 3,
                                                              "out_channels": 3}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    (folder / "scheduler" / "scheduler_config.json").write_text("{}")
    return folder


def write_sd_folder(folder: Path, pipeline: str = "StableDiffusionInpaintPipeline") -> Path:
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"sd weights")
    (folder / "README.md").write_text("---\nlicense: openrail++\ntags:\n- x\n---\n# card\n")
    return folder
