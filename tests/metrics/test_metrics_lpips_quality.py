"""LPIPS (fetch, offline load, no implicit download) and `diffedit quality`. Loopback server only."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffedit.metrics import weights as w
from diffedit.metrics.image_quality import LPIPSUnavailable, lpips_distance, psnr, ssim
from tests.metrics.conftest import write_images

PAYLOAD = b"alexnet stand-in " * 3000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/alexnet.pth"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt by lpips/torchvision to download fails loudly."""
    import torch.hub

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("attempted a download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def alexnet_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random AlexNet state dict in torchvision's format (the real file cannot be downloaded here)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("alex") / w.ALEXNET_NAME
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def _images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_fetch_lpips_writes_the_backbone_to_the_cache(server: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from diffedit.commands.weights import main

    monkeypatch.setattr(w, "ALEXNET_SHA256", SHA)
    assert main(["fetch", "lpips", "--url", server, "--quiet"]) == 0
    assert w.alexnet_path().read_bytes() == PAYLOAD and w.fetched_alexnet() == w.alexnet_path()
    assert str(w.alexnet_path()) in capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lpips-alexnet"] == str(w.alexnet_path())


def test_fetch_lpips_needs_a_full_hash_while_none_is_pinned(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from diffedit.commands.weights import main

    assert w.ALEXNET_SHA256 is None or len(w.ALEXNET_SHA256) == 64
    if w.ALEXNET_SHA256 is None:
        assert main(["fetch", "lpips", "--url", server, "--quiet"]) == 1
        assert "--sha256" in capsys.readouterr().err
    # a hash that contradicts the file name's prefix is refused before any request
    assert main(["fetch", "lpips", "--url", server, "--quiet", "--sha256", SHA]) == 1
    assert "--sha256" in capsys.readouterr().err and not w.alexnet_path().exists()


def test_lpips_uses_the_linear_layers_from_the_wheel(alexnet_state: Path, no_network: None) -> None:
    pytest.importorskip("lpips")
    import torch

    from diffedit.metrics.image_quality import _lpips_model

    path = w.lpips_linear_path("alex")
    assert path is not None and path.parts[-2:] == ("v0.1", "alex.pth")
    linear = torch.load(path, map_location="cpu", weights_only=True)
    st = alexnet_state.stat()
    model = _lpips_model(str(alexnet_state.resolve()), (st.st_size, st.st_mtime_ns)).state_dict()
    assert linear and all(torch.equal(model[k], v) for k, v in linear.items())


def test_lpips_loads_the_fetched_backbone_without_downloading(alexnet_state: Path, no_network: None) -> None:
    pytest.importorskip("lpips")
    import shutil

    w.weights_dir().mkdir(parents=True)
    shutil.copy(alexnet_state, w.alexnet_path())
    a, b = _images()
    assert lpips_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert lpips_distance(a, b) > 0
    assert lpips_distance(a[..., 0], b[..., 0]) > 0  # grey images work too


def test_lpips_backbone_really_comes_from_the_file(alexnet_state: Path, tmp_path: Path, no_network: None) -> None:
    pytest.importorskip("lpips")
    import torch

    state = torch.load(alexnet_state, weights_only=True)
    other = tmp_path / "other.pth"
    torch.save({k: v * 0.5 for k, v in state.items()}, other)
    a, b = _images()
    assert lpips_distance(a, b, backbone=alexnet_state) != pytest.approx(lpips_distance(a, b, backbone=other))
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(LPIPSUnavailable, match="AlexNet"):
        lpips_distance(a, b, backbone=bad)


def test_lpips_without_the_backbone_names_the_fetch_command(no_network: None) -> None:
    pytest.importorskip("lpips")
    a, b = _images()
    with pytest.raises(LPIPSUnavailable, match="diffedit weights fetch lpips"):
        lpips_distance(a, b)


def test_quality_matches_psnr_and_ssim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from diffedit.commands.quality import main

    rng = np.random.default_rng(1)
    refs = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2)]
    outs = [np.clip(r.astype(int) + rng.integers(-20, 21, r.shape), 0, 255).astype(np.uint8) for r in refs]
    write_images(tmp_path / "ref", refs)
    write_images(tmp_path / "out", outs)
    assert main(["--ref", str(tmp_path / "ref"), "--images", str(tmp_path / "out"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"psnr", "ssim", "n"} and result["n"] == 2
    assert result["psnr"] == pytest.approx(np.mean([psnr(r, o) for r, o in zip(refs, outs, strict=True)]))
    assert result["ssim"] == pytest.approx(np.mean([ssim(r, o) for r, o in zip(refs, outs, strict=True)]))
    assert main(["--ref", str(tmp_path / "ref"), "--images", str(tmp_path / "out")]) == 0
    assert "PSNR" in capsys.readouterr().out


def test_quality_lpips(tmp_path: Path, alexnet_state: Path, capsys: pytest.CaptureFixture[str],
                       no_network: None) -> None:
    pytest.importorskip("lpips")
    from diffedit.commands.quality import main

    a, b = _images()
    write_images(tmp_path / "ref", [a])
    (tmp_path / "out").mkdir()
    from PIL import Image

    Image.fromarray(b).save(tmp_path / "out" / "000.bmp")  # paired by name without extension
    args = ["--ref", str(tmp_path / "ref"), "--images", str(tmp_path / "out"), "--lpips", "--json"]
    assert main(args) == 1
    assert "diffedit weights fetch lpips" in capsys.readouterr().err
    w.weights_dir().mkdir(parents=True)
    w.alexnet_path().write_bytes(alexnet_state.read_bytes())
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 1 and result["lpips"] == pytest.approx(lpips_distance(a, b), rel=1e-5)


def test_quality_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from diffedit.commands.quality import main

    write_images(tmp_path / "ref", [np.zeros((8, 8, 3), np.uint8)])
    write_images(tmp_path / "out", [np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)])
    assert main(["--ref", str(tmp_path / "ref"), "--images", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no reference" in err and "001.png" in err and err.count("\n") == 1
    assert main(["--ref", str(tmp_path / "nope"), "--images", str(tmp_path / "out")]) == 1
    assert "not a folder" in capsys.readouterr().err
