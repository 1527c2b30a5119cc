"""Blend modes as defined by the W3C Compositing and Blending spec (separable modes, source-over).

The accumulator is premultiplied float32 so that stacking many layers needs no un-premultiply except
for the non-normal modes, which need the backdrop colour itself.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import numpy as np


class BlendMode(str, Enum):
    NORMAL = "normal"
    MULTIPLY = "multiply"
    SCREEN = "screen"
    OVERLAY = "overlay"
    DARKEN = "darken"
    LIGHTEN = "lighten"
    COLOR_DODGE = "color-dodge"
    COLOR_BURN = "color-burn"
    HARD_LIGHT = "hard-light"
    SOFT_LIGHT = "soft-light"
    DIFFERENCE = "difference"
    EXCLUSION = "exclusion"
    ADD = "add"  # linear dodge: B = min(1, Cb + Cs)

    @property
    def ora_name(self) -> str:
        """The OpenRaster composite-op name (svg:plus for add, as GIMP and Krita write it)."""
        return {BlendMode.NORMAL: "svg:src-over", BlendMode.ADD: "svg:plus"}.get(self, f"svg:{self.value}")

    @classmethod
    def from_ora(cls, name: str | None) -> BlendMode:
        """Map an OpenRaster composite-op back to a mode; unknown ops fall back to normal."""
        if not name:
            return cls.NORMAL
        for mode in cls:
            if mode.ora_name == name:
                return mode
        return cls.NORMAL


def _hard_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    return np.where(cs <= 0.5, cb * 2 * cs, cb + (2 * cs - 1) - cb * (2 * cs - 1))


def _soft_light(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    d = np.where(cb <= 0.25, ((16 * cb - 12) * cb + 4) * cb, np.sqrt(cb))
    return np.where(cs <= 0.5, cb - (1 - 2 * cs) * cb * (1 - cb), cb + (2 * cs - 1) * (d - cb))


def _color_dodge(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        res = np.minimum(1.0, cb / (1 - cs))
    return np.where(cb == 0, 0.0, np.where(cs >= 1, 1.0, res)).astype(cb.dtype)


def _color_burn(cb: np.ndarray, cs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        res = 1 - np.minimum(1.0, (1 - cb) / cs)
    return np.where(cb >= 1, 1.0, np.where(cs <= 0, 0.0, res)).astype(cb.dtype)


BLEND_FUNCTIONS: dict[BlendMode, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    BlendMode.NORMAL: lambda cb, cs: cs,
    BlendMode.MULTIPLY: lambda cb, cs: cb * cs,
    BlendMode.SCREEN: lambda cb, cs: cb + cs - cb * cs,
    BlendMode.OVERLAY: lambda cb, cs: _hard_light(cs, cb),
    BlendMode.DARKEN: np.minimum,
    BlendMode.LIGHTEN: np.maximum,
    BlendMode.COLOR_DODGE: _color_dodge,
    BlendMode.COLOR_BURN: _color_burn,
    BlendMode.HARD_LIGHT: _hard_light,
    BlendMode.SOFT_LIGHT: _soft_light,
    BlendMode.DIFFERENCE: lambda cb, cs: np.abs(cb - cs),
    BlendMode.EXCLUSION: lambda cb, cs: cb + cs - 2 * cb * cs,
    BlendMode.ADD: lambda cb, cs: np.minimum(1.0, cb + cs),
}

def composite_onto(acc: np.ndarray, src: np.ndarray, opacity: float, mode: BlendMode, first: bool = False) -> None:
    """Composite straight-alpha uint8 pixels `src` (h, w, 4) onto `acc`, in place.

    `acc` is planar (4, h, w) float32: premultiplied colour in 0..255 and alpha in 0..1, so that
    per-pixel alpha broadcasts over contiguous colour planes and no colour needs rescaling.
    Implements co = cs' * as + cb * ab * (1 - as) with cs' = (1 - ab) * Cs + ab * B(Cb, Cs), and
    ao = as + ab * (1 - as). `first` says `acc` is still empty, where every mode reduces to a copy.
    """
    s = src.transpose(2, 0, 1).astype(np.float32, order="C")
    alpha_s = s[3]
    alpha_s *= np.float32(opacity / 255)
    cs = s[:3]
    if first:
        np.multiply(cs, alpha_s, out=acc[:3])
        acc[3] = alpha_s
        return
    if mode is not BlendMode.NORMAL:
        cs *= np.float32(1 / 255)
        alpha_b = acc[3]
        cb = np.zeros_like(cs)
        np.divide(acc[:3], alpha_b * np.float32(255), out=cb, where=alpha_b > 0)
        mixed = BLEND_FUNCTIONS[mode](cb, cs)
        cs += alpha_b * (mixed - cs)  # (1 - ab) * Cs + ab * B
        cs *= np.float32(255)
    cs *= alpha_s
    acc *= 1 - alpha_s
    acc[:3] += cs
    acc[3] += alpha_s


def unpremultiply_to_uint8(acc: np.ndarray) -> np.ndarray:
    """Turn a planar premultiplied accumulator (4, h, w) into straight-alpha uint8 (h, w, 4)."""
    alpha = acc[3]
    scaled = np.zeros(acc.shape, np.float32)
    np.divide(acc[:3], alpha, out=scaled[:3], where=alpha > 0)
    np.multiply(alpha, np.float32(255), out=scaled[3])
    scaled += 0.5
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8).transpose(1, 2, 0)
