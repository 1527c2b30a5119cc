"""`VAETrainer(config).run()`: train the preset's AutoencoderKL on a folder of images, for latent
diffusion (`diffedit train --task vae`, then `diffedit train --latent --vae OUT`).

The loss is LDM's without its perceptual and GAN terms: the mean L1 reconstruction error of a decoded
posterior sample, plus `kl_weight` x the KL divergence to N(0, I) per pixel (SD used 1e-6). Every
checkpoint writes the EMA of the weights (diffedit.training.ema) twice: `OUT/vae/` (a diffusers
AutoencoderKL folder, replaced each time, the one latent runs take) and `OUT/checkpoints/step-N/` (also an
AutoencoderKL folder) beside `step-N.state.pt` (raw weights, EMA, optimizer, lr schedule, RNG, step; see
diffedit.training.state). The saved `scaling_factor` is 1 / std of the training images' latents. Like
the diffusion loop, each step's images and noise come from generators seeded by (seed, step), so
`--resume` continues from the last checkpoint with the losses an uninterrupted run would have had. A run
uses one process (a VAE for these model sizes trains in minutes).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffedit.diffusion.devices import pick_device
from diffedit.diffusion.models import PRESETS, vae_config
from diffedit.training import data as data_mod
from diffedit.training import distributed, state
from diffedit.training.config import Progress, StepTimer, TrainConfig, TrainingError
from diffedit.training.ema import EMA
from diffedit.training.loop import fitted_total, lr_factor, resumed_total, warmup_steps
from diffedit.training.setup import check_same_settings, fit_scaling_factor

VAE_FOLDER = "vae"
MARKER = "config.json"  # what makes a step folder of a VAE run complete (see state.completed)


def _pixels(images: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def _write_vae(folder: Path, vae: Any) -> None:
    """save_pretrained into `folder`, atomically replacing what was there."""
    tmp = folder.with_name(f".{folder.name}.partial")
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    vae.save_pretrained(str(tmp), safe_serialization=True)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


class VAETrainer:
    """Checks everything when constructed (data, settings, output folder); trains in `run()`."""

    channels = 3

    def __init__(self, config: TrainConfig) -> None:
        import diffusers

        self.config = c = config
        self._check(c)
        device = pick_device(c.device)
        self.dist = distributed.init(device)
        if self.dist.enabled:
            raise TrainingError("VAE training runs in one process; start it without torchrun")
        self.device = device
        self.index = data_mod.scan(c.data)
        data_mod.validate(self.index, batch=c.batch)
        train_ids, val_ids = data_mod.split(len(self.index.items), c.val_fraction, c.seed)
        if len(train_ids) < c.batch:
            train_ids, val_ids = list(range(len(self.index.items))), []
        self.train_items = [self.index.items[i] for i in train_ids]
        self.val_items = [self.index.items[i] for i in val_ids[: c.val_max]]
        self.out = Path(c.out)
        self.folder = self.out / VAE_FOLDER
        saved = self._resume_state() if c.resume else None
        if saved is None and (self.folder.exists() or state.completed(self.out, MARKER)):
            raise TrainingError(f"{self.out}: already holds a VAE run; resume it (--resume) or choose another "
                                "output folder")
        self.size = c.size or PRESETS[c.preset].image_size
        vae_cfg = {k: v for k, v in vae_config(c.preset, channels=self.channels, image_size=self.size).items()
                   if k != "_class_name"}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.vae = diffusers.AutoencoderKL.from_config(vae_cfg)
        self.vae.to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.vae.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        # the step the run ends at: `steps`, or fewer when a time limit fits the schedule to the clock
        self.total = c.steps
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.total, self.warmup))
        self._checkpoint_seconds = 0.0  # the longest checkpoint so far: a time limit keeps room for the last
        self.ema = EMA(self.vae, c.ema_decay)  # the VAE that is saved and validated
        self.step = 0
        self.saved_step: int | None = None  # the step of the last checkpoint written by this trainer
        self.last_checkpoint: Path | None = None  # OUT/vae once written
        self.best_checkpoint: Path | None = None
        if saved is not None:
            self._load_state(saved)
            self.last_checkpoint = self.folder if self.folder.is_dir() else None
        rng = np.random.default_rng([c.seed, 0xEA1])
        fixed = (self.val_items or self.train_items)[:16]
        self._fixed = _pixels([data_mod.load_example(it, self.size, self.channels, rng, augment=False).image
                               for it in fixed])

    @property
    def warmup(self) -> int:
        return warmup_steps(self.config, self.total)

    @staticmethod
    def _check(c: TrainConfig) -> None:
        if c.preset not in PRESETS:
            raise TrainingError(f"unknown preset '{c.preset}'; choose one of {', '.join(PRESETS)}")
        for key in ("steps", "batch", "checkpoint_every"):
            if getattr(c, key) < 1:
                raise TrainingError(f"{key.replace('_', '-')} must be at least 1, not {getattr(c, key)}")
        if not c.lr > 0:
            raise TrainingError(f"lr must be positive, not {c.lr}")
        if c.time_limit is not None and not c.time_limit > 0:
            raise TrainingError(f"the time limit must be positive, not {c.time_limit:g} s")
        if c.init is not None:
            raise TrainingError("--init is not supported for --task vae yet (it fine-tunes diffusion models)")
        if c.loss != "mse":
            raise TrainingError(f"--loss {c.loss} is for diffusion models; --task vae trains with L1 + KL")
        if c.kl_weight < 0:
            raise TrainingError(f"kl-weight must not be negative, not {c.kl_weight}")
        if c.latent or c.vae:
            raise TrainingError("--task vae trains the VAE itself; --latent and --vae are for the diffusion run")
        size = c.size or PRESETS[c.preset].image_size
        factor = 2 ** (len(PRESETS[c.preset].vae_block_out_channels) - 1)
        if size % factor:
            raise TrainingError(f"image size {size} must be a multiple of {factor} for the '{c.preset}' VAE")

    # -- training state ----------------------------------------------------------------------------
    def _resume_state(self) -> dict[str, Any]:
        done = state.completed(self.out, MARKER)
        if not done:
            raise TrainingError(f"{self.out}: no checkpoint to resume from (expected checkpoints/step-N with its "
                                ".state.pt)")
        try:
            saved = state.load_state(done[-1][1])
        except (OSError, RuntimeError) as exc:
            raise TrainingError(f"cannot resume from {done[-1][1]}: {str(exc).splitlines()[0]}") from None
        check_same_settings(self.config, saved.get("config", {}))
        return saved

    def _state(self) -> dict[str, Any]:
        return {"step": self.step, "vae": self.vae.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                "rng": {"torch": torch.get_rng_state()}, "config": self.config.to_json(),
                "data_count": len(self.index.items), "total": self.total}

    def _load_state(self, saved: dict[str, Any]) -> None:
        self.step = int(saved["step"])
        self.vae.load_state_dict(saved["vae"])
        self.ema.load_state_dict(saved["ema"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.lr_schedule.load_state_dict(saved["lr_schedule"])
        torch.set_rng_state(saved["rng"]["torch"])
        self.total = resumed_total(self.config, self.step, saved)

    # -- loss --------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss, L1 reconstruction error) of one batch in [-1, 1]."""
        posterior = self.vae.encode(x).latent_dist
        eps = torch.randn(posterior.mean.shape, generator=gen).to(posterior.mean)
        recon = self.vae.decode(posterior.mean + posterior.std * eps).sample
        l1 = torch.nn.functional.l1_loss(recon.float(), x.float())
        kl = posterior.kl().float().mean() / x[0].numel()
        return l1 + self.config.kl_weight * kl, l1

    @torch.no_grad()
    def reconstruction_error(self) -> float:
        """Mean L1 error of the EMA VAE decoding the posterior means of fixed (validation, else training)
        images."""
        vae = self.ema.model
        x = self._fixed.to(self.device)
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample
        return float(torch.nn.functional.l1_loss(recon.float(), x))

    def _train_step(self) -> tuple[float, float]:
        c = self.config
        self.vae.train()
        rng = np.random.default_rng([c.seed, self.step, 0xEA2])
        ids = data_mod.batch_indices(len(self.train_items), c.batch, self.step, seed=c.seed)
        x = _pixels([data_mod.load_example(self.train_items[i], self.size, self.channels, rng).image for i in ids])
        gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))
        self.optimizer.zero_grad(set_to_none=True)
        loss, _ = self.loss(x.to(self.device), gen)
        value = float(loss.detach())
        lr = float(self.optimizer.param_groups[0]["lr"])
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} at step {self.step + 1}; training stopped and "
                                f"{self._kept()}. Lower the learning rate (now {lr:g})")
        loss.backward()
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.vae.parameters(), c.grad_clip)
        self.optimizer.step()
        self.lr_schedule.step()
        self.ema.update(self.vae)
        self.step += 1
        return value, lr

    def _kept(self) -> str:
        done = state.completed(self.out, MARKER)
        return f"the last good checkpoint is {done[-1][1]} (its VAE is {self.folder})" if done else \
            "no VAE was saved"

    # -- saving ------------------------------------------------------------------------------------
    def checkpoint(self) -> tuple[Path, float]:
        """Save the EMA VAE of the current step now: checkpoints/step-N (+ state) and OUT/vae, with
        scaling_factor = 1 / std(latents). Returns (OUT/vae, reconstruction error)."""
        for name, module in (("weights", self.vae), ("EMA weights", self.ema.model)):
            if not all(torch.isfinite(p).all() for p in module.parameters()):
                raise TrainingError(f"the {name} hold NaN or inf at step {self.step}; training stopped and "
                                    f"{self._kept()}")
        val = self.reconstruction_error()
        ema = self.ema.model
        ema.register_to_config(scaling_factor=fit_scaling_factor(
            ema, self.train_items, self.size, self.channels, self.device))
        state.save_with(self.out, self.step, self._state(), lambda folder: _write_vae(folder, ema))
        _write_vae(self.folder, ema)
        state.prune(self.out, self.config.keep, MARKER)
        self.saved_step, self.last_checkpoint = self.step, self.folder
        return self.folder, val

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> Iterator[Progress]:
        """Train to `config.steps` (or as far as `config.time_limit` allows), yielding after every step;
        checkpoints every checkpoint_every steps and at the end."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if c.resume:
            state.remove_after(self.out, self.step)
        log = state.MetricsLog(self.out / "metrics.jsonl")
        start, timer, first_step = time.perf_counter(), StepTimer(), self.step
        deadline = start + c.time_limit if c.time_limit else None
        try:
            while self.step < self.total:
                t0 = time.perf_counter()
                loss, lr = self._train_step()
                per_step = timer.add(time.perf_counter() - t0)
                if deadline is not None:
                    self.total = fitted_total(self.step, first_step, start, time.perf_counter(), deadline,
                                              self.total, c.steps, self._checkpoint_seconds)
                log.write({"step": self.step, "loss": loss, "lr": lr, "images_per_s": round(c.batch / per_step, 3)})
                folder: Path | None = None
                val = None
                if self.step % c.checkpoint_every == 0 or self.step == self.total:
                    saving = time.perf_counter()
                    folder, val = self.checkpoint()
                    self._checkpoint_seconds = max(self._checkpoint_seconds, time.perf_counter() - saving)
                    log.write({"step": self.step, "val_loss": val, "checkpoint": str(folder)})
                yield Progress(self.step, self.total, loss, lr, c.batch / per_step,
                               (self.total - self.step) * per_step, time.perf_counter() - start, val,
                               str(folder) if folder else None)
        finally:
            log.close()
