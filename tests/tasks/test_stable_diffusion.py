"""Stable Diffusion pipeline folders through the ordinary tasks, on tiny random pipelines built here.

Where our loop and diffusers' pipeline sample the same thing (same components, scheduler config,
seed and start latents), the images must agree to one 8-bit level: that checks the prompt encoding,
the guidance batch, the noise draw order, the inpainting UNet's channel order and the upscaler's
noise-level conditioning all at once. Only the pipelines' own `__call__` is used as the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from diffedit.diffusion.checkpoints import CheckpointError, file_sha256
from diffedit.diffusion.samplers import get_sampler, make_scheduler, sampler_names
from diffedit.tasks.base import RunContext, TaskRequest, TaskResult
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task

REPO = Path(__file__).resolve().parents[2]
STEPS, SEED, GUIDANCE = 4, 7, 3.0
PROMPT, NEGATIVE = "a red fox in the snow", "blurry"


@dataclass
class SDFolder:
    folder: str
    pipe: Any  # the same components as a diffusers pipeline: the reference


def _unet(in_channels: int, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=16, in_channels=in_channels, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=32, **extra)


def _vae(blocks: tuple[int, ...], scaling_factor: float) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(blocks),
                         up_block_types=("UpDecoderBlock2D",) * len(blocks), block_out_channels=blocks,
                         layers_per_block=1, latent_channels=4, norm_num_groups=32, scaling_factor=scaling_factor)


def _scheduler(**extra: Any) -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1, **extra)


def _pipeline(kind: str) -> Any:
    """A tiny pipeline of `kind` with random weights: 32 px images (64 px out of the x4 upscaler)."""
    import diffusers

    from diffedit.diffusion.text import build_tiny_clip

    clip = build_tiny_clip(width=32, layers=2, heads=2, max_length=16)
    common = {"text_encoder": clip.model, "tokenizer": clip.tokenizer, "safety_checker": None,
              "feature_extractor": None}
    if kind == "upscale":
        return diffusers.StableDiffusionUpscalePipeline(
            vae=_vae((32, 32, 64), 0.08333), unet=_unet(7, num_class_embeds=1000),
            low_res_scheduler=diffusers.DDPMScheduler(), scheduler=_scheduler(prediction_type="v_prediction"),
            watermarker=None, max_noise_level=350, **common)
    cls = {"txt2img": diffusers.StableDiffusionPipeline, "img2img": diffusers.StableDiffusionImg2ImgPipeline,
           "inpaint": diffusers.StableDiffusionInpaintPipeline}[kind]
    return cls(vae=_vae((32, 64), 0.18215), unet=_unet(9 if kind == "inpaint" else 4), scheduler=_scheduler(),
               requires_safety_checker=False, **common)


@pytest.fixture(scope="session")
def sd(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SDFolder]:
    """`sd(kind)`: a saved tiny pipeline folder (txt2img, img2img, inpaint, upscale), built on first use."""
    root = tmp_path_factory.mktemp("stable-diffusion")
    made: dict[str, SDFolder] = {}

    def get(kind: str) -> SDFolder:
        if kind not in made:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(len(made))
                pipe = _pipeline(kind)
            pipe.set_progress_bar_config(disable=True)
            pipe.save_pretrained(root / kind, safe_serialization=True)
            made[kind] = SDFolder(str(root / kind), pipe)
        return made[kind]

    return get


def run(registry: Any, task: str, model: str, context: RunContext | None = None, image: np.ndarray | None = None,
        mask: np.ndarray | None = None, **values: Any) -> TaskResult:
    params = make_params(registry.tasks[task].params, {"steps": STEPS, "seed": SEED, "sampler": "ddim", **values})
    request = TaskRequest(task=task, params=params, model=model, image=image, mask=mask, device="cpu")
    return run_task(request, registry, context)


def reference(pipe: Any, sampler: str = "ddim", seed: int = SEED, **call: Any) -> np.ndarray:
    """The pipeline's own result, scaled to 0..255 floats, with the scheduler our sampler builds."""
    pipe.scheduler = make_scheduler(get_sampler(sampler), pipe.scheduler.config)
    out = pipe(num_inference_steps=call.pop("num_inference_steps", STEPS), output_type="np",
               generator=torch.Generator().manual_seed(seed), **call).images[0]
    return out.astype(np.float64) * 255


def assert_same_image(ours: np.ndarray, ref: np.ndarray, other: np.ndarray) -> None:
    """Within rounding of each other, while another seed's image is far off (so the check has teeth)."""
    assert ours.shape[:2] == ref.shape[:2]
    assert np.abs(ours[..., :3] - ref).max() <= 1.0
    assert np.abs(ours[..., :3] - other).max() > 10


def _pixels(rgba: np.ndarray) -> torch.Tensor:
    from diffedit.diffusion.engine import image_to_tensor

    return image_to_tensor(rgba, 3, torch.device("cpu"), torch.float32)


def _latents(pipe: Any, x: torch.Tensor) -> torch.Tensor:
    """What our tasks start from: the VAE's mean latents (the pipelines would sample them)."""
    with torch.no_grad():
        return pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor


# ---------------------------------------------------------------------------------------- the loader
def test_loader_is_registered_and_detects_only_pipeline_folders(registry, sd, checkpoint) -> None:
    from diffedit_builtin_stablediffusion.layout import is_stable_diffusion

    assert registry.model_loaders["stable-diffusion"].load.endswith(":load_stable_diffusion")
    assert is_stable_diffusion(sd("txt2img").folder) and is_stable_diffusion(sd("upscale").folder)
    assert not is_stable_diffusion(checkpoint("generate")) and not is_stable_diffusion(REPO)


@pytest.mark.parametrize("kind,task,size,extra,mask,scale,prediction", [
    ("txt2img", "generate", 32, 0, False, 1, "epsilon"),
    ("img2img", "generate", 32, 0, False, 1, "epsilon"),
    ("inpaint", "inpaint", 32, 4, True, 1, "epsilon"),
    ("upscale", "super-resolve", 64, 3, False, 4, "v_prediction"),
])
def test_each_pipeline_maps_onto_a_task(sd, kind, task, size, extra, mask, scale, prediction) -> None:
    from diffedit_builtin_stablediffusion.layout import default_sampler
    from diffedit_builtin_stablediffusion.loader import load_stable_diffusion

    model = load_stable_diffusion(sd(kind).folder)
    m = model.manifest
    assert (m.task, m.conditioning, m.latent, m.image_size) == (task, "text", True, size)
    assert (m.condition_channels, m.mask_channel, m.scale_factor, m.prediction_type) == (extra, mask, scale, prediction)
    assert m.default_sampler == default_sampler() and default_sampler() in sampler_names()
    assert model.text_encoder is not None and model.text_encoder.width == 32
    assert (model.encode_condition is not None) == (kind == "upscale")
    assert model.unet_sha256 == file_sha256(Path(sd(kind).folder) / "unet" / "diffusion_pytorch_model.safetensors")


def test_registration_and_folder_reading_import_no_torch(sd) -> None:
    code = ("import sys\nfrom diffedit.plugins import PluginHost\nfrom diffedit.settings import Settings\n"
            "PluginHost(settings=Settings(), autoload=False).discover()\n"
            "from diffedit_builtin_stablediffusion.layout import manifest_for, read_folder\n"
            f"manifest_for(read_folder({sd('inpaint').folder!r}))\n"
            "print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_broken_folders_name_the_file(sd, tmp_path) -> None:
    import json
    import shutil

    from diffedit_builtin_stablediffusion.layout import read_folder

    folder = tmp_path / "sd"
    shutil.copytree(sd("txt2img").folder, folder)
    config = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps({**config, "in_channels": 7}))
    with pytest.raises(CheckpointError, match=r"unet/config.json: in_channels is 7; a StableDiffusionPipeline UNet "
                                              r"takes 4"):
        read_folder(folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(CheckpointError, match=r"vae: missing"):
        read_folder(folder)


def test_weight_files_prefer_safetensors_then_plain_then_fp16(tmp_path) -> None:
    from diffedit_builtin_stablediffusion.loader import weight_files

    stems = ("model", "pytorch_model")
    for name in ("model.fp16.safetensors", "pytorch_model.bin", "model-00002-of-00002.safetensors",
                 "model-00001-of-00002.safetensors"):
        (tmp_path / name).write_bytes(b"")
    assert weight_files(tmp_path, stems) == ([tmp_path / "model-00001-of-00002.safetensors",
                                              tmp_path / "model-00002-of-00002.safetensors"], None)
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (tmp_path / name).unlink()
    assert weight_files(tmp_path, stems) == ([tmp_path / "pytorch_model.bin"], None)
    (tmp_path / "pytorch_model.bin").unlink()
    assert weight_files(tmp_path, stems) == ([tmp_path / "model.fp16.safetensors"], "fp16")
    (tmp_path / "model.fp16.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        weight_files(tmp_path, stems)


def test_unet_adapter_reorders_channels_and_labels_the_noise_level() -> None:
    from diffedit_builtin_stablediffusion.adapter import StableDiffusionUNet, inpaint_order

    from diffedit.diffusion.engine import TaskError

    seen: dict[str, Any] = {}

    def unet(sample: torch.Tensor, timestep: Any, **kwargs: Any) -> torch.Tensor:
        seen.update(sample=sample, **kwargs)
        return sample

    ours = torch.arange(9.0).view(1, 9, 1, 1)  # DiffEdit: latents 0-3, masked latents 4-7, mask 8
    StableDiffusionUNet(unet, order=inpaint_order(4))(ours, 1)
    assert seen["sample"].flatten().tolist() == [0, 1, 2, 3, 8, 4, 5, 6, 7]  # SD: latents, mask, masked
    with pytest.raises(TaskError, match=r"takes 9 input channels .* got 4: use method 'conditioned'"):
        StableDiffusionUNet(unet, order=inpaint_order(4))(ours[:, :4], 1)
    StableDiffusionUNet(unet, class_label=20)(torch.zeros(2, 7, 1, 1), 1)
    assert seen["class_labels"].tolist() == [20, 20]


def test_engine_needs_the_registered_loader_for_pipeline_folders(sd) -> None:
    from diffedit.diffusion import engine

    with pytest.raises(CheckpointError, match="needs the Stable Diffusion loader"):
        engine.load_model(sd("txt2img").folder, torch.device("cpu"), torch.float32)


# ------------------------------------------------------------------------------------------ the tasks
@pytest.mark.parametrize("sampler", ["ddim", ""])  # "": the model's default (DPM++ 2M Karras)
def test_generate_matches_the_pipeline(registry, sd, sampler: str) -> None:
    from diffedit_builtin_stablediffusion.layout import default_sampler

    model = sd("txt2img")
    ours = run(registry, "generate", model.folder, sampler=sampler, prompt=PROMPT, negative_prompt=NEGATIVE,
               guidance_scale=GUIDANCE)
    used = ours.record.sampler
    assert used == (sampler or default_sampler()) and ours.image.shape == (32, 32, 4)
    call = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "guidance_scale": GUIDANCE}
    assert_same_image(ours.image, reference(model.pipe, used, **call), reference(model.pipe, used, SEED + 1, **call))
    assert ours.record.params["prompt"] == PROMPT and ours.record.params["negative_prompt"] == NEGATIVE
    assert ours.record.model_hash == file_sha256(Path(model.folder) / "unet" / "diffusion_pytorch_model.safetensors")


def test_img2img_with_strength_matches_the_pipeline(registry, sd, photo) -> None:
    model = sd("img2img")
    steps: list[int] = []
    ours = run(registry, "img2img", model.folder, RunContext(progress=lambda p: steps.append(p.total)), image=photo,
               steps=6, strength=0.5, prompt=PROMPT, guidance_scale=GUIDANCE)
    assert ours.image.shape == photo.shape and set(steps) == {3}  # strength 0.5 of 6 steps
    # the pipeline takes latents as its image, so it starts from the same ones
    call = {"prompt": PROMPT, "guidance_scale": GUIDANCE, "image": _latents(model.pipe, _pixels(photo)),
            "strength": 0.5, "num_inference_steps": 6}
    assert_same_image(ours.image, reference(model.pipe, **call), reference(model.pipe, seed=SEED + 1, **call))


def test_inpaint_with_the_9_channel_unet_matches_the_pipeline_and_keeps_the_rest(registry, sd, photo, hole) -> None:
    from diffedit.commands.run import flatten_result

    model = sd("inpaint")
    ours = run(registry, "inpaint", model.folder, image=photo, mask=hole, prompt=PROMPT, negative_prompt=NEGATIVE,
               guidance_scale=GUIDANCE, feather=3)
    assert ours.record.params["method"] == "conditioned"
    flat = flatten_result(ours, photo)
    assert np.array_equal(flat[hole == 0], photo[hole == 0]) and (flat[hole == 255] != photo[hole == 255]).any()
    # the context covers the whole 56x40 photo, so the patch is the model's whole output
    assert ours.offset == (0, 0) and ours.image.shape == photo.shape
    masked = _pixels(photo) * torch.from_numpy(hole < 128)  # the hole is 0 (mid grey), as in the pipeline
    call = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "guidance_scale": GUIDANCE, "height": 40, "width": 56,
            "image": Image.fromarray(photo[..., :3]), "mask_image": Image.fromarray(hole),
            "masked_image_latents": _latents(model.pipe, masked)}
    assert_same_image(ours.image, reference(model.pipe, **call), reference(model.pipe, seed=SEED + 1, **call))


def test_x4_upscaler_matches_the_pipeline(registry, sd, photo) -> None:
    from diffedit_builtin_superres.run import upsample

    model = sd("upscale")
    ours = run(registry, "super-resolve", model.folder, image=photo, tile=256)
    assert ours.image.shape == (160, 224, 4) and ours.scale == 4 and ours.record.params["scale"] == 4
    # our condition is the 4x-upsampled input averaged back to latent size; give the pipeline the same
    low = torch.nn.functional.avg_pool2d(_pixels(upsample(photo, 4)), 4)
    call = {"prompt": "", "image": (low + 1) / 2, "guidance_scale": 1.0, "noise_level": 20}  # it takes [0, 1]
    assert_same_image(ours.image, reference(model.pipe, **call), reference(model.pipe, seed=SEED + 1, **call))


def test_cli_generates_from_a_pipeline_folder(sd, tmp_path) -> None:
    out = tmp_path / "fox.png"
    env = {**os.environ, "DIFFEDIT_CONFIG_DIR": str(tmp_path / "config"), "DIFFEDIT_DISABLE_PLUGIN_AUTOLOAD": "1",
           "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "diffedit", "run", "generate", "--model", sd("txt2img").folder,
                           "--prompt", PROMPT, "--negative-prompt", NEGATIVE, "--steps", "2", "--seed", "3",
                           "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr
    with Image.open(out) as png:
        assert png.size == (32, 32)
        parameters = png.text["parameters"]
    assert PROMPT in parameters and NEGATIVE in parameters and "Seed: 3" in parameters
