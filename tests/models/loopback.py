"""Helpers for the model tests: a loopback HTTP server (Range, corrupt and dropped-connection modes)
and tiny model folders. Nothing here reaches the internet."""

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
    ranges: list[str | None] = field(default_factory=list)
    cut_after: int | None = None  # send this many body bytes, then drop the connection
    corrupt: bool = False  # flip one byte in the middle of the body
    honour_range: bool = True
    base: str = ""

    def url(self, path: str = "/w.bin") -> str:
        return self.base + path


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.files.get(self.path)
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
