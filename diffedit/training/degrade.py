"""Synthetic degradations made on the fly, in exactly the form the task runners feed at sampling time.

All work on uint8 images (h, w, c), because the runners receive uint8 pixels too: a condition that
was never quantised in training would be a (small) mismatch at sampling.
- restore: Gaussian noise or JPEG; the runner conditions on the degraded image itself;
- super-resolve: down-scale by the model's factor, then bicubic up-sampling back to full size with
  Pillow, which is what `diffedit_builtin_superres.run.upsample` does before sampling;
- inpaint: brush-like stroke masks; the condition is [image with the hole zeroed, mask], as the
  inpaint task's "conditioned" method builds it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

RESTORE_DEGRADATIONS = ("noise", "jpeg")  # class names of class-conditioned restore models
NOISE_SIGMA = (5.0, 50.0)  # in 0..255 pixel units
JPEG_QUALITY = (10, 60)


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)


def _array(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr


def gaussian_noise(image: np.ndarray, rng: np.random.Generator, sigma: float | None = None) -> np.ndarray:
    """Additive Gaussian noise of a random strength, rounded back to uint8."""
    sigma = rng.uniform(*NOISE_SIGMA) if sigma is None else sigma
    noisy = image.astype(np.float32) + rng.standard_normal(image.shape).astype(np.float32) * sigma
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, rng: np.random.Generator, quality: int | None = None) -> np.ndarray:
    """A JPEG round trip through Pillow at a random quality."""
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if quality is None else quality
    buf = io.BytesIO()
    _pil(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return _array(img.convert("L" if image.shape[2] == 1 else "RGB"))


def downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """The low-resolution input of a x`factor` super-resolution model (area-averaged, like a camera)."""
    h, w = image.shape[:2]
    return _array(_pil(image).resize((w // factor, h // factor), Image.Resampling.BOX))


def upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic up-sampling with Pillow: the super-resolve runner's `upsample`, for uint8 RGB/grey."""
    h, w = image.shape[:2]
    return _array(_pil(image).resize((w * factor, h * factor), Image.Resampling.BICUBIC))


def super_resolve_condition(image: np.ndarray, factor: int) -> np.ndarray:
    """What the super-resolve model is conditioned on: the low-res image, bicubic-upsampled back."""
    return upsample(downscale(image, factor), factor)


def restore_degradation(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A random restore degradation and its index in RESTORE_DEGRADATIONS (the class label)."""
    kind = int(rng.integers(len(RESTORE_DEGRADATIONS)))
    return (gaussian_noise if kind == 0 else jpeg)(image, rng), kind


def brush_mask(size: int, rng: np.random.Generator, strokes: tuple[int, int] = (1, 4)) -> np.ndarray:
    """A (size, size) uint8 mask of 1-3 random brush strokes of random width (255 = fill this).

    Strokes, not rectangles: users paint masks, and a model trained only on boxes inpaints painted
    holes badly (as LaMa and SD-inpainting found). Never empty, never the whole image.
    """
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(strokes[0], strokes[1]))):
        width = int(rng.integers(max(2, size // 16), max(3, size // 4) + 1))
        x, y = rng.uniform(0, size, 2)
        points = [(x, y)]
        for _ in range(int(rng.integers(2, 6))):
            angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(size / 8, size / 3)
            x = float(np.clip(x + length * np.cos(angle), 0, size - 1))
            y = float(np.clip(y + length * np.sin(angle), 0, size - 1))
            points.append((x, y))
        draw.line(points, fill=255, width=width, joint="curve")
        r = width / 2
        for px, py in points:  # round caps
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    mask = np.asarray(img).copy()
    if not mask.any():
        c = size // 2
        mask[c - size // 8 : c + size // 8, c - size // 8 : c + size // 8] = 255
    if mask.all():
        mask[: size // 4] = 0
    return mask
