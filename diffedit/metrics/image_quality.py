"""Full-reference quality for restoration tasks: PSNR, SSIM (Wang et al. 2004), LPIPS when available.

Images are (H, W) or (H, W, C) arrays; `data_range` is 255 for uint8 and must be given for floats.
"""

from __future__ import annotations

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
    """LPIPS needs the `lpips` package and its backbone weights already on disk; we never download them."""


def lpips_distance(a: np.ndarray, b: np.ndarray, net: str = "alex") -> float:
    """LPIPS between two uint8 RGB images, if the lpips package and its torchvision backbone are present."""
    import importlib.util

    if importlib.util.find_spec("lpips") is None:
        raise LPIPSUnavailable("LPIPS needs the 'lpips' package (pip install lpips)")
    import torch
    import torch.hub

    names = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
    backbone = torch.hub.get_dir() + "/checkpoints/" + names[net]
    from pathlib import Path

    if not Path(backbone).is_file():
        raise LPIPSUnavailable(f"LPIPS backbone weights not fetched: {backbone}")
    import lpips

    model = lpips.LPIPS(net=net, verbose=False).eval()

    def t(im: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(im[..., :3].astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]

    with torch.no_grad():
        return float(model(t(a), t(b)).item())
