"""`VAETrainer(config).run()`: train the preset's AutoencoderKL on a folder of images, for latent
diffusion (`diffedit train --task vae`, then `diffedit train --latent --vae OUT`).

The loss is LDM's without its perceptual and GAN terms: the mean L1 reconstruction error of a decoded
posterior sample, plus `kl_weight` x the KL divergence to N(0, I) per pixel (SD used 1e-6). The run
writes `OUT/vae/` (a diffusers AutoencoderKL folder, replaced at every checkpoint) whose
`scaling_factor` is 1 / std of the training images' latents, and `OUT/metrics.jsonl`. A run does not
resume and runs in one process (a VAE for these model sizes trains in minutes).
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
from diffedit.training.loop import lr_factor
from diffedit.training.setup import fit_scaling_factor

VAE_FOLDER = "vae"


def _pixels(images: list[np.ndarray]) -> torch.Tensor:
    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


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
        if self.folder.exists():
            raise TrainingError(f"{self.folder}: already holds a VAE; choose another output folder")
        self.size = c.size or PRESETS[c.preset].image_size
        vae_cfg = {k: v for k, v in vae_config(c.preset, channels=self.channels, image_size=self.size).items()
                   if k != "_class_name"}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.vae = diffusers.AutoencoderKL.from_config(vae_cfg)
        self.vae.to(self.device).train()
        self.optimizer = torch.optim.AdamW(self.vae.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.warmup = c.warmup if c.warmup is not None else min(500, max(1, c.steps // 20))
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, c.steps, self.warmup))
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.best_checkpoint: Path | None = None
        rng = np.random.default_rng([c.seed, 0xEA1])
        fixed = (self.val_items or self.train_items)[:16]
        self._fixed = _pixels([data_mod.load_example(it, self.size, self.channels, rng, augment=False).image
                               for it in fixed])

    @staticmethod
    def _check(c: TrainConfig) -> None:
        if c.preset not in PRESETS:
            raise TrainingError(f"unknown preset '{c.preset}'; choose one of {', '.join(PRESETS)}")
        for key in ("steps", "batch", "checkpoint_every"):
            if getattr(c, key) < 1:
                raise TrainingError(f"{key.replace('_', '-')} must be at least 1, not {getattr(c, key)}")
        if not c.lr > 0:
            raise TrainingError(f"lr must be positive, not {c.lr}")
        if c.kl_weight < 0:
            raise TrainingError(f"kl-weight must not be negative, not {c.kl_weight}")
        if c.resume:
            raise TrainingError("a VAE run cannot be resumed; start a new one (or pass the VAE you have to --vae)")
        if c.latent or c.vae:
            raise TrainingError("--task vae trains the VAE itself; --latent and --vae are for the diffusion run")
        size = c.size or PRESETS[c.preset].image_size
        factor = 2 ** (len(PRESETS[c.preset].vae_block_out_channels) - 1)
        if size % factor:
            raise TrainingError(f"image size {size} must be a multiple of {factor} for the '{c.preset}' VAE")

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
        """Mean L1 error of decoding the posterior means of fixed (validation, else training) images."""
        was_training = self.vae.training
        self.vae.eval()
        x = self._fixed.to(self.device)
        recon = self.vae.decode(self.vae.encode(x).latent_dist.mean).sample
        self.vae.train(was_training)
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
            kept = f"the last VAE saved is {self.last_checkpoint}" if self.last_checkpoint else "no VAE was saved"
            raise TrainingError(f"the loss became {value} at step {self.step + 1}; training stopped and {kept}. "
                                f"Lower the learning rate (now {lr:g})")
        loss.backward()
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.vae.parameters(), c.grad_clip)
        self.optimizer.step()
        self.lr_schedule.step()
        self.step += 1
        return value, lr

    # -- saving ------------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write OUT/vae (atomically replacing the last one) with scaling_factor = 1 / std(latents)."""
        self.vae.eval()
        self.vae.register_to_config(scaling_factor=fit_scaling_factor(
            self.vae, self.train_items, self.size, self.channels, self.device))
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / f".{VAE_FOLDER}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        self.vae.save_pretrained(str(tmp), safe_serialization=True)
        old = self.out / f".{VAE_FOLDER}.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            self.folder.rename(old)
        tmp.rename(self.folder)
        shutil.rmtree(old, ignore_errors=True)
        self.last_checkpoint = self.folder
        return self.folder

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> Iterator[Progress]:
        """Train to `config.steps`, yielding after every step; saves OUT/vae every checkpoint_every steps."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        log = state.MetricsLog(self.out / "metrics.jsonl")
        start, timer = time.perf_counter(), StepTimer()
        try:
            while self.step < c.steps:
                t0 = time.perf_counter()
                loss, lr = self._train_step()
                per_step = timer.add(time.perf_counter() - t0)
                log.write({"step": self.step, "loss": loss, "lr": lr, "images_per_s": round(c.batch / per_step, 3)})
                folder: Any = None
                val = None
                if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                    val = self.reconstruction_error()
                    folder = self.save()
                    log.write({"step": self.step, "val_loss": val, "checkpoint": str(folder)})
                yield Progress(self.step, c.steps, loss, lr, c.batch / per_step, (c.steps - self.step) * per_step,
                               time.perf_counter() - start, val, str(folder) if folder else None)
        finally:
            log.close()
