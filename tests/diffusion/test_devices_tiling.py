"""Devices, precision fallback, out-of-memory errors, and seamless tiling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from diffedit.diffusion import devices
from diffedit.diffusion.devices import (
    DeviceError,
    DeviceOutOfMemory,
    NonFiniteResult,
    nan_guard,
    out_of_memory_error,
    pick_device,
    pick_dtype,
    run_with_precision_fallback,
    translate_out_of_memory,
)
from diffedit.diffusion.tiling import crop_back, pad_to_multiple, run_tiled


# ------------------------------------------------------------------------------------- devices
def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(" CPU ") == torch.device("cpu")
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    for bad in ("gpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(DeviceError, match="unknown device"):
            pick_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is missing")
def test_asking_for_a_missing_gpu_is_a_clear_error(monkeypatch) -> None:
    with pytest.raises(DeviceError, match="CUDA was asked for but is not available"):
        pick_device("cuda")
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(DeviceError, match=r"MPS .* not available"):
        pick_device("mps")
    assert pick_device("auto") == torch.device("cpu")


def test_pick_device_cuda_index(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    assert pick_device("auto") == torch.device("cuda")
    with pytest.raises(DeviceError, match="only 2 CUDA GPU"):
        pick_device("cuda:2")


def test_pick_dtype(monkeypatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert pick_dtype(cpu) == pick_dtype(cpu, "fp32") == torch.float32
    assert pick_dtype(gpu) == pick_dtype(gpu, "fp16") == torch.float16
    assert pick_dtype("mps", "auto") == torch.float16
    for half in ("fp16", "bf16"):
        with pytest.raises(DeviceError, match="only on a GPU"):
            pick_dtype(cpu, half)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_dtype(gpu, "bf16") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(DeviceError, match="bf16 is not supported"):
        pick_dtype(gpu, "bf16")
    with pytest.raises(DeviceError, match="unknown precision"):
        pick_dtype(cpu, "fp8")


# ---------------------------------------------------------------------------- precision fallback
def test_nan_guard_finds_non_finite_values_anywhere() -> None:
    good = {"image": torch.ones(2), "steps": [torch.zeros(1), 3], "ids": torch.tensor([1, 2])}
    assert nan_guard(good) is good
    for bad in (torch.tensor([1.0, math.nan]), (torch.ones(1), {"x": torch.tensor([math.inf])})):
        with pytest.raises(NonFiniteResult):
            nan_guard(bad)


def test_half_precision_overflow_is_retried_in_fp32() -> None:
    calls = []

    def run(dtype):  # 300 squared overflows fp16 (max 65504) into inf, as a large activation does
        calls.append(dtype)
        return (torch.full((2, 2), 300.0, dtype=dtype) ** 2).sqrt()

    result = run_with_precision_fallback(run, torch.float16)
    assert calls == [torch.float16, torch.float32]
    assert result.retried and result.dtype == torch.float32
    assert torch.equal(result.value, torch.full((2, 2), 300.0))
    _, dtype, retried = run_with_precision_fallback(run, torch.float32)  # fine in fp32: one call
    assert (dtype, retried) == (torch.float32, False) and calls[-1] == torch.float32 and len(calls) == 3


def test_fallback_also_catches_raised_non_finite_and_never_returns_nan() -> None:
    calls = []

    def loop(dtype):
        calls.append(dtype)
        if dtype == torch.bfloat16:
            raise NonFiniteResult("step 12 went NaN")
        return torch.ones(1)

    assert run_with_precision_fallback(loop, torch.bfloat16).retried
    with pytest.raises(NonFiniteResult, match="again in fp32"):
        run_with_precision_fallback(lambda dtype: torch.full((1,), math.nan, dtype=dtype), torch.float16)
    with pytest.raises(NonFiniteResult, match="in fp32"):
        run_with_precision_fallback(lambda dtype: torch.full((1,), math.nan, dtype=dtype), torch.float32)


def test_out_of_memory_becomes_advice_and_frees_the_cache(monkeypatch) -> None:
    freed = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(True))
    exc = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    error = out_of_memory_error(exc, "cuda")
    assert isinstance(error, DeviceOutOfMemory) and freed == [True]
    message = str(error)
    assert "out of memory on cuda" in message
    assert all(word in message for word in ("smaller tiles", "lower resolution", "CPU"))
    with pytest.raises(DeviceOutOfMemory) as info, translate_out_of_memory("cuda"):
        raise RuntimeError("CUDA error: out of memory")
    assert isinstance(info.value.__cause__, RuntimeError) and freed == [True, True]
    with pytest.raises(ValueError, match="unrelated"), translate_out_of_memory("cpu"):
        raise ValueError("unrelated")
    assert "CPU (slower" not in str(out_of_memory_error(MemoryError(), "cpu"))


# -------------------------------------------------------------------------------------- tiling
def _conv(radius: int, channels_in: int = 3, channels_out: int = 4, seed: int = 0) -> torch.nn.Conv2d:
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(channels_in, channels_out, 2 * radius + 1, padding=radius)
    return conv.requires_grad_(False)


@pytest.mark.parametrize(("height", "width"), [(70, 53), (64, 64), (33, 129), (20, 100)])
def test_tiled_equals_untiled_for_pointwise_and_small_receptive_fields(height, width) -> None:
    image = torch.randn(2, 3, height, width)
    assert torch.allclose(run_tiled(lambda t: t, image, 32, 8), image, atol=1e-6)
    pointwise = lambda t: torch.sin(3 * t) * t + 1  # noqa: E731
    assert torch.allclose(run_tiled(pointwise, image, 32, 8), pointwise(image), atol=1e-6)
    for radius, overlap in ((1, 8), (2, 8), (3, 12)):  # margin = overlap // 4 covers the radius
        conv = _conv(radius)
        assert torch.allclose(run_tiled(conv, image, 32, overlap), conv(image), atol=1e-5)
    deep = torch.nn.Sequential(_conv(1, 3, 8), torch.nn.SiLU(), _conv(1, 8, 3, seed=1))  # radius 2
    assert torch.allclose(run_tiled(deep, image, 24, 10), deep(image), atol=1e-5)


def test_tiled_upscaling_with_a_different_channel_count() -> None:
    image = torch.randn(1, 3, 45, 70)
    conv = _conv(1, 3, 5)

    def upscale(t: torch.Tensor) -> torch.Tensor:
        return conv(F.interpolate(t, scale_factor=2, mode="nearest"))

    ticks = []
    out = run_tiled(upscale, image, 32, 8, scale=2, progress=lambda done, total: ticks.append((done, total)))
    assert out.shape == (1, 5, 90, 140)
    assert torch.allclose(out, upscale(image), atol=1e-5)
    assert ticks[-1][0] == ticks[-1][1] == len(ticks) == 2 * 3


def test_per_tile_differences_are_blended_without_seams() -> None:
    """A function that is different in every tile (as a UNet with group norm is): no hard seams."""
    count = iter(range(100))

    def offset(t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, float(next(count)))  # tile k paints the value k

    out = run_tiled(offset, torch.zeros(1, 1, 100, 100), 40, 16)[0, 0]
    step_x, step_y = (out[:, 1:] - out[:, :-1]).abs().max(), (out[1:] - out[:-1]).abs().max()
    # Four tiles a row (origins 0, 24, 48, 60): a hard seam would jump by 1 across and 4 down.
    assert step_x < 0.3 * 1 and step_y < 0.3 * 4
    hard = run_tiled(offset, torch.zeros(1, 1, 100, 100), 40, 0)[0, 0]
    assert (hard[:, 1:] - hard[:, :-1]).abs().max() >= 1  # without overlap, the seam is there


@pytest.mark.parametrize("batch", [2, 4, 100])
def test_batched_tiles_give_the_unbatched_result_in_fewer_calls(batch: int) -> None:
    image = torch.randn(2, 3, 70, 101)  # two images: tiles stack as [tile 1 of both, tile 2 of both, ...]
    conv = _conv(1, 3, 5)

    def upscale(t: torch.Tensor) -> torch.Tensor:
        return conv(F.interpolate(t, scale_factor=2, mode="nearest"))

    calls, ticks = [], []

    def counted(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[0])
        return upscale(t)

    one = run_tiled(upscale, image, 32, 8, scale=2)
    out = run_tiled(counted, image, 32, 8, scale=2, batch=batch, progress=lambda d, t: ticks.append((d, t)))
    tiles = 3 * 4  # origins 0, 24, 38 down and 0, 24, 48, 69 across
    assert torch.allclose(out, one, atol=1e-5) and torch.allclose(out, upscale(image), atol=1e-5)
    assert calls == [2 * min(batch, tiles - k) for k in range(0, tiles, batch)]
    assert ticks == [(min(k + batch, tiles), tiles) for k in range(0, tiles, batch)]


def test_small_images_make_one_call_and_bad_arguments_are_refused() -> None:
    calls = []
    image = torch.randn(1, 3, 20, 30)
    out = run_tiled(lambda t: calls.append(t.shape) or t * 2, image, 32, 8)
    assert calls == [image.shape] and torch.equal(out, image * 2)
    for tile, overlap, scale in ((32, 32, 1), (0, 0, 1), (32, -1, 1), (32, 8, 0)):
        with pytest.raises(ValueError):
            run_tiled(lambda t: t, torch.randn(1, 1, 64, 64), tile, overlap, scale)
    with pytest.raises(ValueError, match="batch >= 1"):
        run_tiled(lambda t: t, torch.randn(1, 1, 64, 64), 32, 8, batch=0)
    with pytest.raises(ValueError, match="margin"):
        run_tiled(lambda t: t, torch.randn(1, 1, 64, 64), 32, 8, margin=4)
    with pytest.raises(ValueError, match="returned shape"):
        run_tiled(lambda t: t[..., :-1], torch.randn(1, 1, 64, 64), 32, 8)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        run_tiled(lambda t: t, torch.randn(3, 64, 64), 32, 8)


def test_pad_to_multiple_and_crop_back() -> None:
    image = torch.randn(1, 3, 45, 70)
    padded, box = pad_to_multiple(image, 16)
    assert padded.shape[-2:] == (48, 80) and tuple(box) == (0, 0, 45, 70)
    assert torch.equal(padded[..., :45, :70], image)
    assert torch.equal(padded[..., 45, :70], image[..., 43, :])  # reflected, not zeros
    assert torch.equal(crop_back(padded, box), image)
    upscaled = F.interpolate(padded, scale_factor=2, mode="nearest")
    assert torch.equal(crop_back(upscaled, box, scale=2), F.interpolate(image, scale_factor=2, mode="nearest"))
    tiny, box = pad_to_multiple(torch.randn(1, 1, 3, 3), 8)  # too small to reflect: edges repeat
    assert tiny.shape[-2:] == (8, 8) and torch.equal(tiny[..., 7, 7], tiny[..., 2, 2])
    same, box = pad_to_multiple(image[..., :32, :64], 32)
    assert same.shape[-2:] == (32, 64) and tuple(box) == (0, 0, 32, 64)
