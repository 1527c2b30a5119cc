"""Running a convolutional function over an image too large for memory, in overlapping tiles.

Tiles overlap by `overlap` pixels and are blended with cosine ramps. Each interior tile edge first
gets `margin` pixels of zero weight: those pixels see the tile border (zero padding) instead of the
neighbouring image, so dropping them makes any function whose receptive-field radius is at most
`margin` give exactly its untiled result; functions with wider context (attention, group norm) get
smooth transitions instead of seams.

Also: padding to a multiple (UNets and VAEs need sizes divisible by 2**levels) and cropping back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple


class CropBox(NamedTuple):
    """Where the original image lies inside a padded one, in input pixels."""

    top: int
    left: int
    height: int
    width: int


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one axis: every `stride`, the last one flush with the end."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, stride), length - tile]


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles `run_tiled` makes of a height x width image (for progress over several runs)."""
    if height <= tile and width <= tile:
        return 1
    stride = tile - overlap
    return len(_starts(height, min(tile, height), stride)) * len(_starts(width, min(tile, width), stride))


def _ramp(n: int) -> list[float]:
    """n weights rising from near 0 to near 1 along half a cosine, all strictly positive."""
    return [0.5 - 0.5 * math.cos(math.pi * (k + 0.5) / n) for k in range(n)]


def _rising_edge(n: int, overlap: int, margin: int, scale: int) -> list[float]:
    """Weights of n output pixels after an interior edge: `margin` zeros, a ramp, then ones."""
    zero, ramp = margin * scale, _ramp((overlap - margin) * scale)
    return ([0.0] * zero + ramp + [1.0] * n)[:n]


def _axis_weights(start: int, size: int, length: int, overlap: int, margin: int, scale: int) -> list[float]:
    """Blend weights along one axis of a tile, in output pixels; edges on the image border keep 1."""
    n = size * scale
    left = _rising_edge(n, overlap, margin, scale) if start > 0 and overlap else [1.0] * n
    right = _rising_edge(n, overlap, margin, scale)[::-1] if start + size < length and overlap else [1.0] * n
    return [min(a, b) for a, b in zip(left, right, strict=True)]


def run_tiled(fn: Callable[[Any], Any], image: Any, tile: int, overlap: int, scale: int = 1, *,
              margin: int | None = None, progress: Callable[[int, int], None] | None = None,
              batch: int = 1) -> Any:
    """`fn` over (B, C, H, W) `image` in tiles of at most `tile` x `tile` pixels, blended seamlessly.

    `fn` maps a (B, C, h, w) tile to (B, C', h*scale, w*scale). `margin` (default overlap // 4, at
    most (overlap - 1) // 2) is the receptive-field radius, in input pixels, for which the result is
    exact. `progress(done, total)` is called after each call of `fn`. Images no larger than one tile
    make a single call. `batch` > 1 stacks up to that many tiles (all the same size) along the first
    dimension into one call: a GPU runs many small tiles in the time of one.
    """
    import torch

    if image.dim() != 4:
        raise ValueError(f"run_tiled needs a (B, C, H, W) tensor, not shape {tuple(image.shape)}")
    if tile < 1 or not 0 <= overlap < tile or scale < 1 or batch < 1:
        raise ValueError(f"need tile >= 1, 0 <= overlap < tile, scale >= 1 and batch >= 1 "
                         f"(got {tile}, {overlap}, {scale}, {batch})")
    margin = overlap // 4 if margin is None else margin
    if overlap and not 0 <= 2 * margin < overlap:
        raise ValueError(f"margin {margin} must be at least 0 and less than half the overlap {overlap}")
    height, width = image.shape[-2:]
    if height <= tile and width <= tile:
        out = fn(image)
        _check_shape(out, image.shape, height, width, scale)
        if progress is not None:
            progress(1, 1)
        return out
    th, tw = min(tile, height), min(tile, width)
    ys, xs = _starts(height, th, tile - overlap), _starts(width, tw, tile - overlap)
    origins = [(y, x) for y in ys for x in xs]
    n = image.shape[0]
    out = weight_sum = None
    dtype = image.dtype
    for first in range(0, len(origins), batch):
        chunk = origins[first:first + batch]
        results = fn(torch.cat([image[..., y:y + th, x:x + tw] for y, x in chunk]))
        _check_shape(results, (n * len(chunk), *image.shape[1:]), th, tw, scale)
        if out is None:
            dtype = results.dtype
            out = torch.zeros((n, *results.shape[1:-2], height * scale, width * scale), device=results.device)
            weight_sum = torch.zeros((height * scale, width * scale), device=results.device)
        for i, (y, x) in enumerate(chunk):
            wy = torch.tensor(_axis_weights(y, th, height, overlap, margin, scale))
            wx = torch.tensor(_axis_weights(x, tw, width, overlap, margin, scale))
            weight = (wy[:, None] * wx[None, :]).to(out.device)
            rows, cols = slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale)
            out[..., rows, cols] += results[i * n:(i + 1) * n].float() * weight
            weight_sum[rows, cols] += weight
        if progress is not None:
            progress(first + len(chunk), len(origins))
    assert out is not None and weight_sum is not None
    return (out / weight_sum).to(dtype)


def _check_shape(result: Any, shape: Any, h: int, w: int, scale: int) -> None:
    if result.dim() != 4 or result.shape[0] != shape[0] or tuple(result.shape[-2:]) != (h * scale, w * scale):
        raise ValueError(f"the tiled function returned shape {tuple(result.shape)} for a {h}x{w} tile; "
                         f"expected ({shape[0]}, C, {h * scale}, {w * scale})")


def pad_to_multiple(x: Any, multiple: int, mode: str = "reflect") -> tuple[Any, CropBox]:
    """Pad the bottom and right of (B, C, H, W) `x` so H and W divide by `multiple`.

    Reflection avoids the dark borders zero padding gives; it falls back to repeating the edge when
    the image is too small to reflect.
    """
    import torch.nn.functional as F  # noqa: N812

    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    box = CropBox(0, 0, height, width)
    if not pad_h and not pad_w:
        return x, box
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        mode = "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), box


def crop_back(y: Any, box: CropBox, scale: int = 1) -> Any:
    """The part of `y` (the function's output on the padded image) that covers the original image."""
    top, left, height, width = (v * scale for v in box)
    return y[..., top:top + height, left:left + width]
