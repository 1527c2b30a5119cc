"""Choosing where and in what precision models run, and failing clearly when that goes wrong.

- `pick_device` / `pick_dtype`: "auto" picks the best available; an explicit choice that cannot be
  honoured is an error rather than a silent fallback, so the user knows what ran.
- `run_with_precision_fallback`: half precision can overflow into NaN/inf (a black image); such a
  run is repeated in fp32 instead of returning garbage.
- `out_of_memory_error`: a torch OOM becomes a `DeviceOutOfMemory` with advice, after freeing cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class DeviceError(RuntimeError):
    """The asked-for device or precision cannot be used here; the message says why and what to do."""


class DeviceOutOfMemory(DeviceError):
    """The device ran out of memory; the message suggests how to need less."""


class NonFiniteResult(RuntimeError):
    """A run produced NaN or infinite values (its image would come out black or garbled)."""


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(preference: str = "auto") -> Any:
    """A torch.device for "auto" (CUDA, then MPS, then CPU), "cuda", "cuda:N", "mps" or "cpu"."""
    import torch

    kind, _, index = preference.strip().lower().partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"unknown device {preference!r}; choose one of auto, cuda, cuda:N, mps, cpu")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU was found"
            raise DeviceError(f"CUDA was asked for but is not available: {why}; use --device cpu or auto")
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(f"{preference} was asked for but only {torch.cuda.device_count()} CUDA GPU(s) exist")
        return torch.device(f"cuda:{index}" if index else "cuda")
    if kind == "mps" and not _mps_available():
        raise DeviceError("MPS (Apple GPU) was asked for but is not available here; use --device cpu or auto")
    return torch.device(kind)


def pick_dtype(device: Any, precision: str = "auto") -> Any:
    """fp32 on the CPU; "auto" is fp16 on GPUs. Half precision is refused on the CPU (slow, lossy)."""
    import torch

    device = torch.device(device)
    precision = precision.strip().lower()
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    gpu = device.type in ("cuda", "mps")
    if precision == "auto":
        return torch.float16 if gpu else torch.float32
    if precision == "fp32":
        return torch.float32
    if not gpu:
        raise DeviceError(f"{precision} runs only on a GPU; use fp32 (or auto) on the {device.type.upper()}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("bf16 is not supported by this GPU; use fp16 or fp32")
    return torch.float16 if precision == "fp16" else torch.bfloat16


def _tensors(value: Any) -> Iterator[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from _tensors(getattr(value, name))


def nan_guard(result: T) -> T:
    """`result` unchanged when every tensor in it is finite; otherwise NonFiniteResult."""
    import torch

    for tensor in _tensors(result):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteResult("the model produced NaN or infinite values")
    return result


class PrecisionRun(NamedTuple):
    value: Any
    dtype: Any  # the dtype that gave `value`
    retried: bool  # True when half precision failed and fp32 was used


def run_with_precision_fallback(fn: Callable[[Any], T], dtype: Any) -> PrecisionRun:
    """`fn(dtype)`, checked with `nan_guard`; a half-precision run that gives NaN/inf (or raises
    NonFiniteResult itself) is repeated with `fn(torch.float32)`. Never returns a non-finite result.
    """
    import torch

    try:
        return PrecisionRun(nan_guard(fn(dtype)), dtype, False)
    except NonFiniteResult:
        if dtype == torch.float32:
            raise NonFiniteResult("the model produced NaN or infinite values in fp32: the checkpoint or "
                                  "the inputs are broken") from None
    try:
        return PrecisionRun(nan_guard(fn(torch.float32)), torch.float32, True)
    except NonFiniteResult:
        raise NonFiniteResult(f"the model produced NaN or infinite values in {dtype} and again in fp32: the "
                              "checkpoint or the inputs are broken") from None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def out_of_memory_error(exc: BaseException, device: Any) -> DeviceOutOfMemory:
    """A DeviceOutOfMemory for `exc` (raise it `from exc`), after freeing the device's cached memory."""
    import gc

    import torch

    kind = torch.device(device).type
    gc.collect()
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and _mps_available():
        torch.mps.empty_cache()
    advice = "use smaller tiles, a lower resolution or a smaller batch"
    if kind != "cpu":
        advice += ", fp16, or run on the CPU (slower, but it has more memory)"
    return DeviceOutOfMemory(f"out of memory on {torch.device(device)}: {advice}")


@contextlib.contextmanager
def translate_out_of_memory(device: Any) -> Iterator[None]:
    """Inside this block, an out-of-memory error surfaces as DeviceOutOfMemory."""
    try:
        yield
    except Exception as exc:
        if is_out_of_memory(exc):
            raise out_of_memory_error(exc, device) from exc
        raise
