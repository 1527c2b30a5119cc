"""Reading flat images with Pillow into RGBA 8-bit, and exporting flattened images.

Odd inputs (EXIF rotation, 16-bit, palettes, greyscale, CMYK, colour profiles) are normalised and
every change is reported, so the editor can tell the user what happened to their file.
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from diffedit import __version__
from diffedit.document.atomic import atomic_write

DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels; configurable per call and in settings
READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
# Only these decoders are tried: Pillow would otherwise also open, say, EPS (which runs Ghostscript)
# or exotic formats whatever the file's name, widening what a crafted file can reach.
READ_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
EXPORT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_PIL_LIMIT_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-wide; swap it one thread at a time


class ImageFileError(ValueError):
    """A file could not be read or written; the message says which file and what to do."""


class ImageTooLargeError(ImageFileError):
    """The image has more pixels than the configured limit (a possible decompression bomb)."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (h, w, 4) uint8, straight alpha
    notes: list[str] = field(default_factory=list)  # what normalisation changed, for the user
    format: str = ""
    info: dict[str, str] = field(default_factory=dict)  # text chunks (generation parameters)


def check_pixel_limit(width: int, height: int, max_pixels: int, what: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} ({width * height / 1e6:.1f} MP), over the limit of "
            f"{max_pixels / 1e6:.1f} MP; if you trust this file, raise the pixel limit in the settings"
        )


def open_pil(
    source: str | os.PathLike[str] | io.BytesIO,
    max_pixels: int,
    what: str,
    formats: tuple[str, ...] = READ_FORMATS,
) -> Image.Image:
    """Open an image with its size checked before any pixel is decoded."""
    try:
        with warnings.catch_warnings(), _PIL_LIMIT_LOCK:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our own check below replaces Pillow's
            try:
                img = Image.open(source, formats=list(formats))
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except FileNotFoundError:
        raise ImageFileError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise ImageFileError(f"{what} is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ImageFileError(
            f"{what} is not an image DiffEdit can read; use PNG, JPEG, WebP, TIFF, BMP or OpenRaster (.ora)"
        ) from None
    except OSError as exc:
        raise ImageFileError(f"{what} could not be read: {exc}") from None
    try:
        check_pixel_limit(img.width, img.height, max_pixels, what)
    except ImageFileError:
        img.close()  # do not leave the file open behind a refused image
        raise
    return img


def _to_srgb(img: Image.Image, notes: list[str]) -> Image.Image:
    profile = img.info.get("icc_profile")
    if not profile or img.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return img
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        name = ImageCms.getProfileDescription(src).strip()
        if "srgb" in name.lower():
            return img
        out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode=out_mode)
        notes.append(f"converted from the embedded colour profile '{name}' to sRGB")
        return converted  # type: ignore[return-value]
    except Exception as exc:  # a broken profile must not stop the user from opening the image
        notes.append(f"ignored an embedded colour profile that could not be used ({exc})")
        return img


def normalize(img: Image.Image, notes: list[str]) -> np.ndarray:
    """Convert any Pillow image to (h, w, 4) uint8 RGBA, recording what changed."""
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        img = ImageOps.exif_transpose(img)
        notes.append(f"rotated/flipped according to its EXIF orientation ({orientation})")
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(arr / peak * 255), 0, 255).astype(np.uint8)
        notes.append("reduced 16-bit greyscale to 8-bit and converted it to RGB")
        img = Image.fromarray(grey, "L")
        mode = "L"
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        img = Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8), "L")
        notes.append("converted 32-bit float greyscale to 8-bit RGB")
        mode = "L"
    elif mode in ("RGB;16", "RGBA;16", "RGB;16B", "RGBA;16B"):  # pragma: no cover - newer Pillow only
        notes.append("reduced 16 bits per channel to 8")
    img = _to_srgb(img, notes)
    mode = img.mode
    if mode in ("P", "PA"):
        notes.append("expanded the palette to RGBA")
    elif mode in ("L", "LA", "1"):
        notes.append("converted greyscale to RGB" if mode != "1" else "converted 1-bit black and white to RGB")
    elif mode == "CMYK":
        notes.append("converted CMYK to RGB")
    elif mode not in ("RGB", "RGBA"):
        notes.append(f"converted {mode} to RGBA")
    rgba = img.convert("RGBA")
    pixels = np.array(rgba, dtype=np.uint8)
    if mode != "RGBA" and bool(pixels[..., 3].min(initial=255) < 255):
        notes.append("kept its transparency as the layer's alpha")
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 4:  # pragma: no cover
        raise ImageFileError(f"could not convert {mode} pixels to RGBA")
    return pixels


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read a flat image file as RGBA 8-bit, normalised, with notes on what changed."""
    what = f"'{path}'"
    img = open_pil(path, max_pixels, what)
    notes: list[str] = []
    try:
        with img:
            img.load()
            texts = {k: v for k, v in img.info.items() if isinstance(v, str)}
            pixels = normalize(img, notes)
            fmt = img.format or ""
    except ImageFileError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error) as exc:
        raise ImageFileError(f"{what} is damaged or truncated and could not be read ({exc})") from None
    return LoadedImage(pixels=pixels, notes=notes, format=fmt, info=texts)


def png_text_chunks(records: list[dict[str, object]], parameters: str) -> PngImagePlugin.PngInfo:
    """PNG text chunks: `parameters` (as other diffusion tools write it) and our `diffedit` JSON."""
    info = PngImagePlugin.PngInfo()
    if parameters:
        # add_text writes a Latin-1 tEXt chunk (iTXt only when needed), as AUTOMATIC1111 does, so
        # readers that only look at tEXt find it too
        info.add_text("parameters", parameters)
    if records:
        info.add_itxt("diffedit", json.dumps({"version": __version__, "layers": records}, sort_keys=True))
    return info


def encode_image(
    pixels: np.ndarray, fmt: str, pnginfo: PngImagePlugin.PngInfo | None = None, quality: int = 95
) -> bytes:
    """Encode RGBA pixels; JPEG has no alpha, so transparent areas are put on white."""
    img = Image.fromarray(pixels, "RGBA")
    buf = io.BytesIO()
    if fmt == "JPEG":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        background.save(buf, "JPEG", quality=quality)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=quality, lossless=quality >= 100)
    else:
        img.save(buf, "PNG", pnginfo=pnginfo)
    return buf.getvalue()


def export_format(path: str | os.PathLike[str]) -> str:
    ext = Path(path).suffix.lower()
    if ext not in EXPORT_FORMATS:
        raise ImageFileError(f"cannot export to '{ext or path}'; use a .png, .jpg or .webp file name")
    return EXPORT_FORMATS[ext]


def write_image(
    path: str | os.PathLike[str], pixels: np.ndarray, pnginfo: PngImagePlugin.PngInfo | None = None
) -> Path:
    """Write RGBA pixels atomically, in the format named by the extension."""
    data = encode_image(pixels, export_format(path), pnginfo)
    return atomic_write(path, lambda f: f.write(data))
