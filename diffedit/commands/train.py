"""`diffedit train`: train a model on a folder of images, with a progress bar.

Every problem found before training (data, settings, output folder) and a NaN stop exit 1 with one
line on stderr; checkpoints already written stay. Launch with `torchrun --nproc-per-node N -m
diffedit train ...` for data-parallel training (only rank 0 prints and writes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from diffedit.training.config import TrainConfig

TASKS = ("generate", "inpaint", "super-resolve", "restore", "segment")


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig(data="", out="")
    p = argparse.ArgumentParser(
        prog="diffedit train",
        description="Train a diffusion model on a folder of images. Sub-folders are classes (--conditioning "
        "class), NAME.txt beside an image is its caption (--conditioning text), NAME.mask.png its "
        "segmentation mask (--task segment).")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of training images (searched recursively)")
    p.add_argument("--task", default="generate", choices=TASKS, help="what the model will do (default: generate)")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoints/, best/, samples/, metrics")
    p.add_argument("--preset", default=d.preset, choices=("tiny", "small", "base"), help="model size")
    p.add_argument("--size", type=int, default=None, metavar="PX", help="training resolution (default: preset's)")
    p.add_argument("--steps", type=int, default=d.steps, metavar="N", help="optimizer steps in total")
    p.add_argument("--batch", type=int, default=d.batch, metavar="B", help="images per step and process")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr:g})")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default=d.precision, choices=("auto", "bf16", "fp16", "fp32"),
                   help="mixed precision on CUDA (auto: bf16 where supported); always fp32 elsewhere")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N")
    p.add_argument("--keep", type=int, default=d.keep, metavar="K", help="checkpoints to keep (plus best/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--conditioning", choices=("none", "class", "text", "concat"), default=None,
                   help="default: the task's (none for generate, concat for image tasks)")
    p.add_argument("--prediction-type", default=d.prediction_type, choices=("epsilon", "v_prediction", "sample"))
    p.add_argument("--scale", type=int, default=None, choices=(2, 4), help="super-resolve factor (default 4)")
    p.add_argument("--latent", action="store_true", help="train on the latents of --vae")
    p.add_argument("--vae", default=None, metavar="DIR", help="AutoencoderKL folder (or checkpoint with vae/)")
    p.add_argument("--text-encoder", default=None, metavar="DIR",
                   help="checkpoint folder with text_encoder/ and tokenizer/ (default: the preset's CLIP)")
    p.add_argument("--accumulate", type=int, default=d.accumulate, help="micro-batches per optimizer step")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 5%% of steps, at most 500)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="images held out for validation")
    p.add_argument("--sample-steps", type=int, default=d.sample_steps, help="sampler steps for the sample grids")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data, out=args.out, task=args.task, preset=args.preset, size=args.size, steps=args.steps,
        batch=args.batch, lr=args.lr, conditioning=args.conditioning, latent=args.latent, vae=args.vae,
        text_encoder=args.text_encoder, prediction_type=args.prediction_type, scale_factor=args.scale,
        seed=args.seed, device=args.device, precision=args.precision, warmup=args.warmup, accumulate=args.accumulate,
        ema_decay=args.ema_decay, checkpoint_every=args.checkpoint_every, keep=args.keep,
        val_fraction=args.val_fraction, sample_steps=args.sample_steps, resume=args.resume)


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

    bar = None
    trainer = None
    try:
        trainer = Trainer(config)
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
