"""Full-reference quality for restoration tasks: PSNR, SSIM (Wang et al. 2004), LPIPS when available.

Images are (H, W) or (H, W, C) arrays; `data_range` is 255 for uint8 and must be given for floats.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter


def _pair(a: np.ndarray, b: np.ndarray, data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if data_range is None:
        if a.dtype != np.uint8:
            raise ValueError("give data_range for float images")
        data_range = 255.0
    return a.astype(np.float64), b.astype(np.float64), float(data_range)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    x, y, r = _pair(a, b, data_range)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(r * r / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float | None = None, sigma: float = 1.5) -> float:
    """Mean SSIM with an 11-tap Gaussian window (sigma 1.5, truncate 3.5), per channel then averaged.

    Uses the sample covariance like scikit-image's `gaussian_weights=True`, so values match it.
    """
    x, y, r = _pair(a, b, data_range)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    win = 11
    npix = win * win
    cov_norm = npix / (npix - 1)
    crop = (win - 1) // 2
    out = []
    for c in range(x.shape[-1]):
        xc, yc = x[..., c], y[..., c]

        def f(im: np.ndarray) -> np.ndarray:
            return gaussian_filter(im, sigma, truncate=3.5, mode="reflect")

        ux, uy = f(xc), f(yc)
        vx = cov_norm * (f(xc * xc) - ux * ux)
        vy = cov_norm * (f(yc * yc) - uy * uy)
        vxy = cov_norm * (f(xc * yc) - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s[crop:-crop, crop:-crop].mean() if min(s.shape) > 2 * crop else s.mean())
    return float(np.mean(out))


class LPIPSUnavailable(RuntimeError):
    """LPIPS needs the `lpips` package and its AlexNet backbone already on disk; we never download them."""


FETCH_COMMAND = "diffedit weights fetch lpips"


@functools.lru_cache(maxsize=2)
def _lpips_model(backbone: str, _stamp: tuple[int, int]) -> Any:
    """LPIPS v0.1 'alex': linear layers from the lpips wheel, AlexNet features from `backbone`.

    `pnet_rand=True` builds the trunk with random weights, so neither lpips nor torchvision fetches
    anything; the ImageNet weights are then loaded from the fetched file (tensors only, no pickled code).
    `_stamp` (size, mtime) makes a replaced file load again.
    """
    import warnings

    import lpips
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's "'pretrained' is deprecated"
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(backbone, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise LPIPSUnavailable(f"not an AlexNet state dict: {backbone}")
    trunk = model.net.state_dict()  # keys like "slice2.3.weight": the index is AlexNet's features index
    try:
        mapped = {k: state["features." + k.split(".", 1)[1]] for k in trunk}
        model.net.load_state_dict(mapped, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise LPIPSUnavailable(f"not torchvision's AlexNet weights: {backbone} ({exc})") from exc
    return model.eval()


def lpips_distance(a: np.ndarray, b: np.ndarray, net: str = "alex", backbone: str | os.PathLike[str] | None = None,
                   ) -> float:
    """LPIPS v0.1 between two uint8 RGB (or grey) images of the same shape; 0 for identical images.

    The AlexNet backbone comes from `backbone` or the file `diffedit weights fetch lpips` wrote; when
    it is absent this raises LPIPSUnavailable naming that command. Nothing is ever downloaded here.
    """
    if net != "alex":
        raise ValueError(f"only LPIPS 'alex' is supported, not {net!r}")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError("LPIPS takes uint8 images")
    if importlib.util.find_spec("lpips") is None:
        raise LPIPSUnavailable("LPIPS needs the 'lpips' package (pip install --no-deps lpips==0.1.4)")
    from diffedit.metrics.weights import alexnet_path

    path = Path(backbone) if backbone is not None else alexnet_path()
    if not path.is_file():
        raise LPIPSUnavailable(f"LPIPS backbone weights not fetched ({path}): run '{FETCH_COMMAND}'")
    st = path.stat()
    model = _lpips_model(str(path.resolve()), (st.st_size, st.st_mtime_ns))
    import torch

    def t(im: np.ndarray) -> torch.Tensor:
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=-1)
        elif im.shape[-1] == 1:
            im = np.repeat(im, 3, axis=-1)
        x = im[..., :3].astype(np.float32) / 127.5 - 1  # [-1, 1], as LPIPS expects
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]

    with torch.no_grad():
        return float(model(t(a), t(b)).item())
