"""`Trainer(config).run()`: the training loop, as a generator of Progress so the CLI's progress bar
and the GUI dialog drive the same code (and can stop it by no longer iterating).

Exact resume: every random choice of step s (images, crops, degradations, noise, timesteps, CFG
dropout) comes from generators seeded with (seed, step, micro-batch, rank), and the state file holds
raw weights, EMA, optimizer, lr schedule and RNG states, so a resumed run repeats the losses an
uninterrupted run would have had.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffedit.diffusion.devices import pick_device
from diffedit.diffusion.models import ModelBundle, Provenance
from diffedit.training import distributed, preview, state
from diffedit.training.config import Progress, StepTimer, TrainConfig, TrainingError
from diffedit.training.data import load_example
from diffedit.training.ema import EMA
from diffedit.training.objective import Batch, condition_kwargs, diffusion_loss, make_batch, model_space
from diffedit.training.prefetch import BatchRecipe, Prefetcher, auto_workers, build_micro_batch
from diffedit.training.setup import crop_mode, fit_scaling_factor, prepare


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


TIME_FIT_MIN_STEPS = 10  # steps timed before a time limit sets the run's length


def fitted_total(step: int, first_step: int, started: float, now: float, deadline: float, total: int,
                 steps: int, reserve: float) -> int:
    """The step a time-limited run should end at so that it ends, with a final checkpoint taking
    `reserve` seconds, by `deadline`: the rate is measured over this session's steps (checkpoints
    included) and re-measured every step, so the cosine schedule is stretched or shortened to the
    clock. `total` stands until TIME_FIT_MIN_STEPS were timed; `steps` is the upper bound."""
    done = step - first_step
    if now >= deadline:
        return step
    if done < TIME_FIT_MIN_STEPS:
        return total
    per_step = (now - started) / done
    return max(step, min(steps, step + max(0, int((deadline - now - reserve) / per_step))))


def warmup_steps(config: TrainConfig, total: int) -> int:
    """Warm-up steps: as asked, else 5% of the run (of its fitted length under a time limit), at most 500."""
    return config.warmup if config.warmup is not None else min(500, max(1, total // 20))


def resumed_total(config: TrainConfig, step: int, saved: dict[str, Any]) -> int:
    """The run's length after a resume: an interrupted time-limited run keeps its fitted schedule until
    this session has timed its own steps; one that ran to its end (its schedule had ended) starts anew."""
    fitted = int(saved.get("total", config.steps))
    return min(config.steps, fitted) if config.time_limit and step < fitted else config.steps


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """Checks everything when constructed (data, settings, output folder); trains in `run()`."""

    # the device type of autocast and GradScaler when mixed precision is on (`_mixed_precision` allows it
    # on CUDA only); tests set "cpu" to run the same path without a GPU
    amp_device = "cuda"

    def __init__(self, config: TrainConfig) -> None:
        self.config = c = config
        device = pick_device(c.device)
        self.dist = distributed.init(device)
        self.device = distributed.device_for(self.dist, device)
        prepared = prepare(c)
        self.index, self.train_items, self.val_items = prepared.index, prepared.train, prepared.val
        self.bundle = prepared.bundle
        self.manifest = self.bundle.manifest
        self.size = self.manifest.image_size
        self.out = Path(c.out)
        self.last_checkpoint: Path | None = prepared.resume_from
        self.best_checkpoint: Path | None = None
        self.best_val = math.inf
        import diffusers

        self.scheduler = diffusers.DDPMScheduler.from_config(self.bundle.scheduler_config)
        self.unet = self.bundle.unet.to(self.device).train()
        for module in (self.bundle.vae,):
            if module is not None:
                module.to(self.device).eval().requires_grad_(False)
        self.text_encoder = self.bundle.text_encoder
        if self.text_encoder is not None:
            self.text_encoder.to(self.device)
            frozen = getattr(self.text_encoder, "model", None)
            if frozen is not None:
                frozen.requires_grad_(False)
        if self.device.type == "cuda":  # tensor cores want NHWC convolutions; on the CPU it only costs
            self.unet.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True  # every training batch has the same shape: tune once
        self.model = distributed.wrap(self.unet, self.dist, self.device)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        # the step the run ends at: `steps`, or fewer when a time limit fits the schedule to the clock
        self.total = c.steps
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.total, self.warmup))
        self.autocast_dtype = self._mixed_precision()
        self.scaler = torch.amp.GradScaler(self.amp_device, enabled=self.autocast_dtype == torch.float16)
        self.ema = EMA(self.unet, c.ema_decay)
        self.step = 0
        self._batches: Prefetcher | None = None
        self._checkpoint_seconds = 0.0  # the longest checkpoint so far: a time limit keeps room for the last
        if prepared.resume_state is not None:
            self._load_state(prepared.resume_state)
        self._preview_batch = self._fixed_batch(self.val_items or self.train_items, c.sample_count, salt=1,
                                                cycle_classes=True)
        self._val_batches = [self._fixed_batch(self.val_items[i : i + c.batch], c.batch, salt=2 + i)
                             for i in range(0, len(self.val_items), c.batch)]

    # -- set-up helpers ----------------------------------------------------------------------------
    def _mixed_precision(self) -> torch.dtype | None:
        """bf16/fp16 autocast on CUDA only: on the CPU it is slower, and MPS autocast is incomplete."""
        p = self.config.precision
        if self.device.type != "cuda" or p == "fp32":
            return None
        if p == "fp16":
            return torch.float16
        if p in ("bf16", "auto"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        raise TrainingError(f"unknown precision '{p}'; choose auto, bf16, fp16 or fp32")

    @property
    def warmup(self) -> int:
        return warmup_steps(self.config, self.total)

    @property
    def crop(self) -> str:
        return crop_mode(self.config)

    @property
    def channels(self) -> int:
        return 3 if self.manifest.task == "segment" else self.manifest.channels

    def _fixed_batch(self, items: list[Any], count: int, salt: int, cycle_classes: bool = False) -> Batch:
        """Validation and preview batches: centre crops and degradations that never change."""
        rng = np.random.default_rng([self.config.seed, salt, 0xF1])
        chosen = [items[i % len(items)] for i in range(count)] if items else []
        batch = make_batch([load_example(it, self.size, self.channels, rng, augment=False, crop=self.crop)
                            for it in chosen],
                           self.manifest, rng)
        if cycle_classes and self.manifest.conditioning == "class" and self.manifest.task == "generate":
            batch.labels = torch.arange(count) % len(self.manifest.class_names)
        return batch

    def _state(self) -> dict[str, Any]:
        rng: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"step": self.step, "unet": self.unet.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng, "best_val": self.best_val,
                "total": self.total,
                "config": self.config.to_json(), "data_count": len(self.index.items)}

    def _load_state(self, saved: dict[str, Any]) -> None:
        self.step = int(saved["step"])
        self.ema.load_state_dict(saved["ema"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.lr_schedule.load_state_dict(saved["lr_schedule"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["rng"]["torch"])
        if "cuda" in saved["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
        self.best_val = float(saved.get("best_val", math.inf))
        self.total = resumed_total(self.config, self.step, saved)
        if (self.out / "best").is_dir() and math.isfinite(self.best_val):
            self.best_checkpoint = self.out / "best"

    # -- one step ----------------------------------------------------------------------------------
    def _recipe(self) -> BatchRecipe:
        c, d = self.config, self.dist
        return BatchRecipe(tuple(self.train_items), self.size, self.channels, self.crop, self.manifest, c.seed,
                           c.batch, d.rank, d.world_size)

    def _micro_batch(self, step: int, micro: int) -> tuple[Batch, torch.Generator]:
        """Micro-batch `micro` of `step` (from the prefetching workers while `run` is training) and the
        generator of its noise and timesteps."""
        c, d = self.config, self.dist
        k = step * c.accumulate + micro
        batch = self._batches.get(k) if self._batches is not None else build_micro_batch(self._recipe(), k)
        gen = torch.Generator(device="cpu").manual_seed(_seed(c.seed, k, d.rank, 0x7E57))
        return batch, gen

    def compute_loss(self, batch: Batch, gen: torch.Generator) -> torch.Tensor:
        """The training loss of one micro-batch (a method so tests can make it misbehave)."""
        x0, cond = model_space(batch, self.bundle.vae, self.device)
        kwargs = condition_kwargs(batch, self.manifest, self.text_encoder, self.device, self.config.cond_dropout, gen)
        autocast = (torch.autocast(self.amp_device, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            return diffusion_loss(self.model, self.scheduler, x0, cond, kwargs, gen, residual=self.manifest.residual,
                                  loss=self.config.loss)

    def _train_step(self) -> tuple[float, float]:
        c = self.config
        self.unet.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro in range(c.accumulate):
            batch, gen = self._micro_batch(self.step, micro)
            sync = micro == c.accumulate - 1 or not self.dist.enabled
            with contextlib.nullcontext() if sync else self.model.no_sync():
                loss = self.compute_loss(batch, gen)
                self.scaler.scale(loss / c.accumulate).backward()
            total += loss.detach()
        # one all-reduce decides for every rank: a NaN on one rank stops them all, with the same message
        loss_value, bad_ranks = distributed.mean_and_bad_ranks(total / c.accumulate, self.dist)
        lr = float(self.optimizer.param_groups[0]["lr"])
        if bad_ranks or not math.isfinite(loss_value):
            where = f" (on rank {', '.join(map(str, bad_ranks))})" if self.dist.enabled and bad_ranks else ""
            raise TrainingError(f"the loss became {loss_value} at step {self.step + 1}{where}; training stopped "
                                f"and {self._kept()}. Lower the learning rate (now {lr:g}) or use fp32")
        self.scaler.unscale_(self.optimizer)
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.unet.parameters(), c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr_schedule.step()
        self.ema.update(self.unet)
        self.step += 1
        return loss_value, lr

    # -- checkpoints -------------------------------------------------------------------------------
    @torch.no_grad()
    def validation_loss(self) -> float | None:
        """Mean loss of the EMA model on the held-out images, fixed noise and evenly spread timesteps."""
        if not self._val_batches:
            return None
        losses = []
        n_t = self.scheduler.config.num_train_timesteps
        for i, batch in enumerate(self._val_batches):
            n = batch.x.shape[0]
            gen = torch.Generator(device="cpu").manual_seed(_seed(self.config.seed, i, 0x7A1))
            x0, cond = model_space(batch, self.bundle.vae, self.device)
            kwargs = condition_kwargs(batch, self.manifest, self.text_encoder, self.device, 0.0, gen)
            t = ((torch.arange(n) + 0.5) * n_t / n).long().clamp(max=n_t - 1)
            if self.manifest.residual:  # what matters most: the one-step estimate, from pure noise
                t = torch.full_like(t, n_t - 1)
            losses.append(float(diffusion_loss(self.ema.model, self.scheduler, x0, cond, kwargs, gen, t,
                                                residual=self.manifest.residual, loss=self.config.loss)) * n)
        return sum(losses) / sum(b.x.shape[0] for b in self._val_batches)

    def ema_bundle(self) -> ModelBundle:
        made = Provenance(data=str(Path(self.config.data).resolve()), steps=self.step, seed=self.config.seed)
        return ModelBundle(replace(self.manifest, made=made), self.ema.model, self.bundle.scheduler_config,
                           self.bundle.vae, self.text_encoder)

    def _kept(self) -> str:
        return f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
            "no checkpoint had been written yet"

    def _check_weights(self) -> None:
        """Stop (on every rank together) when the raw or EMA weights hold NaN or inf."""
        bad = [name for name, module in (("weights", self.unet), ("EMA weights", self.ema.model))
               if not all(torch.isfinite(p).all() for p in module.parameters())]
        ranks = distributed.ranks_where(bool(bad), self.dist, self.device)
        if ranks:
            what = " and ".join(bad) if bad else "weights"  # a rank with good weights names them generally
            where = f" (on rank {', '.join(map(str, ranks))})" if self.dist.enabled else ""
            raise TrainingError(f"the {what} hold NaN or inf at step {self.step}{where}; training stopped and "
                                f"{self._kept()}")

    def checkpoint(self) -> tuple[Path, float | None, Path]:
        """Save a checkpoint of the current step now (pause, stop): (folder, validation loss, sample grid)."""
        self._check_weights()
        return self._checkpoint()

    def _checkpoint(self) -> tuple[Path, float | None, Path]:
        val = self.validation_loss()
        improved = val is not None and math.isfinite(val) and val < self.best_val
        if improved:
            self.best_val = val  # type: ignore[assignment]
        bundle = self.ema_bundle()
        folder = state.save(self.out, self.step, bundle, self._state())
        self.last_checkpoint = folder
        if improved:
            self.best_checkpoint = state.save_best(self.out, bundle)
        state.prune(self.out, self.config.keep)
        c = self.config
        grid = preview.write_grid(self.out / "samples" / f"step-{self.step:06d}.png", self.ema.model,
                                  self.bundle.vae, self.text_encoder, self.manifest, self.bundle.scheduler_config,
                                  self._preview_batch, steps=c.sample_steps, seed=c.seed, sampler=c.sampler,
                                  device=self.device)
        return folder, val, grid

    # -- the run -----------------------------------------------------------------------------------
    def _fit_to_time_limit(self, first_step: int, started: float, deadline: float) -> None:
        """Set `total` so the run ends, final checkpoint included, by `deadline` (see `fitted_total`).

        Every rank takes rank 0's answer (ranks that stopped at different steps would wait for each
        other for ever).
        """
        total = fitted_total(self.step, first_step, started, time.perf_counter(), deadline, self.total,
                             self.config.steps, self._checkpoint_seconds)
        self.total = max(self.step, distributed.from_rank0(total, self.dist, self.device))

    def run(self) -> Iterator[Progress]:
        """Train to `config.steps` (or as far as `config.time_limit` allows), yielding after every step;
        raises TrainingError on NaN."""
        c, main = self.config, self.dist.is_main
        vae = self.bundle.vae
        if vae is not None and self.step == 0 and float(vae.config.scaling_factor) == 1.0:
            vae.register_to_config(scaling_factor=fit_scaling_factor(vae, self.train_items, self.size,
                                                                     self.channels, self.device))
        if main and c.resume:
            state.remove_after(self.out, self.step)
        log = state.MetricsLog(self.out / "metrics.jsonl") if main else None
        images_per_step = c.batch * c.accumulate * self.dist.world_size
        workers = c.workers if c.workers is not None else auto_workers(self.device.type)
        self._batches = Prefetcher(self._recipe(), workers)
        start, timer, first_step = time.perf_counter(), StepTimer(), self.step
        deadline = start + c.time_limit if c.time_limit else None
        try:
            while self.step < self.total:
                t0 = time.perf_counter()
                loss, lr = self._train_step()
                per_step = timer.add(time.perf_counter() - t0)
                if deadline is not None:
                    self._fit_to_time_limit(first_step, start, deadline)
                speed = images_per_step / per_step
                eta = (self.total - self.step) * per_step
                if log is not None:
                    log.write({"step": self.step, "loss": loss, "lr": lr, "images_per_s": round(speed, 3)})
                folder = val = grid = None
                if self.step % c.checkpoint_every == 0 or self.step == self.total:
                    saving = time.perf_counter()
                    self._check_weights()
                    failure: Exception | None = None
                    if main:
                        try:
                            folder, val, grid = self._checkpoint()
                            assert log is not None
                            log.write({"step": self.step, "val_loss": val, "checkpoint": str(folder)})
                        except Exception as exc:  # the other ranks learn of it below instead of waiting
                            failure = exc
                    if distributed.ranks_where(failure is not None, self.dist, self.device):  # also a barrier
                        if failure is not None:
                            raise failure
                        raise TrainingError(f"rank 0 could not write the checkpoint of step {self.step}; "
                                            f"training stopped and {self._kept()}")
                    self.last_checkpoint = state.step_folder(self.out, self.step)  # on every rank
                    self._checkpoint_seconds = max(self._checkpoint_seconds, time.perf_counter() - saving)
                yield Progress(self.step, self.total, loss, lr, speed, eta, time.perf_counter() - start, val,
                               str(folder) if folder else None, str(grid) if grid else None)
        finally:
            self._batches.close()
            self._batches = None
            if log is not None:
                log.close()
