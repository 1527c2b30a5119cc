"""Device guards around task runs: NaN in half precision retries in fp32, out-of-memory is explained."""

import pytest
import torch

from diffedit.diffusion import engine
from diffedit.diffusion.devices import DeviceOutOfMemory, NonFiniteResult
from diffedit.document.records import GenerationRecord
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult


def _request(precision: str) -> TaskRequest:
    return TaskRequest(task="x", params=None, device="cpu", precision=precision)


def test_half_precision_nan_is_retried_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "pick_dtype", lambda device, p: torch.float32 if p == "fp32" else torch.float16)
    calls = []

    @engine.guarded
    def runner(request: TaskRequest, context: RunContext) -> TaskResult:
        calls.append(request.precision)
        if request.precision != "fp32":
            raise NonFiniteResult("nan")
        return TaskResult(record=GenerationRecord(task="x"))

    result = runner(_request("fp16"), RunContext())
    assert calls == ["fp16", "fp32"] and "computed in fp32" in result.notes[0]


def test_nan_in_fp32_is_a_clear_error() -> None:
    @engine.guarded
    def runner(request: TaskRequest, context: RunContext) -> TaskResult:
        raise NonFiniteResult("nan")

    with pytest.raises(NonFiniteResult, match="in fp32: the checkpoint or the input is broken"):
        runner(_request("auto"), RunContext())


def test_out_of_memory_becomes_advice() -> None:
    @engine.guarded
    def runner(request: TaskRequest, context: RunContext) -> TaskResult:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with pytest.raises(DeviceOutOfMemory, match="smaller tiles, a lower resolution"):
        runner(_request("auto"), RunContext())


def test_a_model_that_outputs_nan_never_gives_an_image(registry, checkpoint, tmp_path) -> None:
    from diffedit.diffusion.checkpoints import load_checkpoint, save_checkpoint
    from diffedit.diffusion.models import ModelBundle
    from diffedit.tasks.params import make_params
    from diffedit.tasks.runner import run_task

    model = load_checkpoint(checkpoint("generate"))
    with torch.no_grad():
        next(model.unet.parameters()).fill_(float("nan"))
    broken = tmp_path / "broken"
    save_checkpoint(broken, ModelBundle(model.manifest, model.unet, model.scheduler_config))
    params = make_params(registry.tasks["generate"].params, {"steps": 2, "seed": 1})
    with pytest.raises(NonFiniteResult, match="NaN"):
        run_task(TaskRequest(task="generate", params=params, model=str(broken), device="cpu"), registry)
