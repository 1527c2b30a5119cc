"""Model builders, presets, the text encoder and the `diffedit models` command, on tiny CPU models."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from diffedit.commands.models import main
from diffedit.diffusion.checkpoints import CheckpointError, read_manifest
from diffedit.diffusion.models import PRESETS, build, scheduler_config, unet_config
from diffedit.diffusion.text import (
    CLIPTextEncoder,
    TextEncoder,
    TextEncoderError,
    build_tiny_clip,
    load_text_encoder,
    register_text_encoder,
)


# ------------------------------------------------------------------------------------ builders
@pytest.mark.parametrize("kind", ["unconditional", "class", "inpaint", "text", "latent"])
def test_tiny_presets_run_a_forward_pass_well_under_a_second(kind, tiny_bundle, unet_inputs) -> None:
    """Measured in CPU seconds on one thread (conftest): other processes sharing this machine's two
    cores can stretch wall time many times over, but not the work a forward pass needs (~0.02 s)."""
    bundle = tiny_bundle(kind)
    for size in (32, 64):
        inputs = unet_inputs(bundle, size=size)
        used = []
        with torch.no_grad():
            bundle.unet(**inputs)  # warm-up: first calls pay for oneDNN's set-up
            for _ in range(3):
                start = time.process_time()
                out = bundle.unet(**inputs).sample
                used.append(time.process_time() - start)
        assert torch.get_num_threads() == 1
        assert min(used) < 1.0, f"{kind} at {size} px took {min(used):.2f} CPU s"
        assert out.shape == (1, bundle.unet.config.out_channels, *inputs["sample"].shape[-2:])
        assert torch.isfinite(out).all()


def test_class_model_reserves_one_null_class_for_guidance(tiny_bundle, unet_inputs) -> None:
    bundle = tiny_bundle("class")
    names = bundle.manifest.class_names
    assert bundle.unet.config.num_class_embeds == len(names) + 1
    assert bundle.manifest.null_class == len(names)
    inputs = unet_inputs(bundle)
    with torch.no_grad():
        outs = [bundle.unet(**{**inputs, "class_labels": torch.tensor([c])}).sample for c in range(len(names) + 1)]
        assert not torch.equal(outs[0], outs[-1])  # the label changes the prediction
        with pytest.raises(IndexError):
            bundle.unet(**{**inputs, "class_labels": torch.tensor([len(names) + 1])})


@pytest.mark.parametrize(("task", "overrides", "in_channels", "out_channels"), [
    ("generate", {}, 3, 3),
    ("inpaint", {}, 3 + 3 + 1, 3),  # noisy image + masked image + mask
    ("inpaint", {"conditioning": "none"}, 3, 3),  # RePaint-style: a plain model
    ("super-resolve", {}, 3 + 3, 3),
    ("restore", {"start": "degraded"}, 3 + 3, 3),
    ("img2img", {}, 3 + 3, 3),
    ("segment", {}, 1 + 3, 1),  # generates a mask from an RGB image
    ("generate", {"channels": 1}, 1, 1),
    ("inpaint", {"latent": True}, 4 + 4 + 1, 4),  # latents + masked-image latents + mask
    ("inpaint", {"conditioning": "text"}, 3 + 3 + 1, 3),  # text-guided inpainting, as SD-inpainting
])
def test_input_channels_follow_task_and_conditioning(task, overrides, in_channels, out_channels) -> None:
    bundle = build(task, preset="tiny", seed=0, **overrides)
    assert (bundle.unet.config.in_channels, bundle.unet.config.out_channels) == (in_channels, out_channels)
    m = bundle.manifest
    base = 4 if m.latent else m.channels
    assert in_channels == base + m.condition_channels + int(m.mask_channel)
    assert m.scale_factor == (4 if task == "super-resolve" else 1)


def test_text_model_attends_to_the_encoder_states(tiny_bundle, unet_inputs) -> None:
    bundle = tiny_bundle("text")
    assert type(bundle.unet).__name__ == "UNet2DConditionModel"
    assert bundle.unet.config.cross_attention_dim == bundle.text_encoder.width == 32
    states = bundle.text_encoder.encode(["a red fox", ""])
    assert states.shape == (2, bundle.text_encoder.max_length, 32)
    inputs = unet_inputs(bundle, batch=1)
    with torch.no_grad():
        fox = bundle.unet(**{**inputs, "encoder_hidden_states": states[:1]}).sample
        empty = bundle.unet(**{**inputs, "encoder_hidden_states": states[1:]}).sample
    assert not torch.allclose(fox, empty)


def test_latent_model_denoises_vae_latents(tiny_bundle) -> None:
    bundle = tiny_bundle("latent")
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        latents = bundle.vae.encode(image).latent_dist.mode()
        decoded = bundle.vae.decode(latents).sample
    assert latents.shape == (1, 4, 32, 32)  # the tiny VAE halves the size
    assert bundle.unet.config.sample_size == 32 and bundle.unet.config.out_channels == 4
    assert decoded.shape == image.shape
    assert bundle.scheduler_config["beta_schedule"] == "scaled_linear"
    assert bundle.scheduler_config["clip_sample"] is False  # latents are not in [-1, 1]
    assert bundle.scheduler_config["prediction_type"] == "v_prediction"


def test_same_seed_gives_the_same_weights_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build("generate", "text", "tiny", seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    b, c = build("generate", "text", "tiny", seed=7), build("generate", "text", "tiny", seed=8)
    for (name, pa), pb in zip(a.unet.state_dict().items(), b.unet.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.unet.parameters(), c.unet.parameters(), strict=True))
    states = a.text_encoder.model.state_dict()
    assert all(torch.equal(v, states[k]) for k, v in b.text_encoder.model.state_dict().items())


def test_scheduler_config_is_a_ddpm_training_schedule() -> None:
    from diffusers import DDPMScheduler

    for prediction in ("epsilon", "v_prediction", "sample"):
        config = build("generate", preset="tiny", prediction_type=prediction).scheduler_config
        scheduler = DDPMScheduler.from_config(config)
        assert scheduler.config.num_train_timesteps == 1000
        assert scheduler.config.prediction_type == prediction
        assert config["beta_schedule"] == "linear" and config["_class_name"] == "DDPMScheduler"
    assert scheduler_config(beta_schedule="squaredcos_cap_v2")["beta_schedule"] == "squaredcos_cap_v2"
    with pytest.raises(ValueError, match="prediction_type"):
        scheduler_config("x0")


def test_presets_grow_and_build_consistent_configs() -> None:
    from diffusers import UNet2DConditionModel, UNet2DModel

    counts = []
    for name, preset in PRESETS.items():
        size = preset.image_size
        with torch.device("meta"):  # shapes only: no memory, no time
            plain = UNet2DModel.from_config(unet_config(name, sample_size=size, in_channels=7, out_channels=3))
            text = UNet2DConditionModel.from_config(unet_config(name, sample_size=size // 8, in_channels=4,
                                                                out_channels=4, cross_attention_dim=512))
        counts.append(sum(p.numel() for p in plain.parameters()))
        assert text.config.cross_attention_dim == 512
        blocks = [type(b).__name__ for b in plain.down_blocks]
        if any(preset.attention):
            assert blocks[-1] == "AttnDownBlock2D"  # attention at low res
        else:  # conv: convolutional levels (diffusers' middle block still attends, at the lowest scale)
            assert "AttnDownBlock2D" not in blocks and name == "conv"
        assert type(plain.down_blocks[0]).__name__ == "DownBlock2D"  # none at full resolution
    assert counts == sorted(counts) and counts[0] < 2_000_000


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("paint",), {}, "unknown task"),
    (("generate",), {"preset": "huge"}, "unknown preset"),
    (("generate",), {"image_size": 30}, "multiple of 4"),
    (("generate", "class"), {}, "needs class_names"),
    (("generate", "concat"), {}, "needs condition_channels"),
    (("generate", "none"), {"condition_channels": 3}, "use 'concat'"),
    (("generate",), {"start": "degraded"}, "start 'degraded'"),
    (("generate", "class"), {"class_names": ["a", "a"]}, "duplicates"),
])
def test_invalid_settings_are_refused_with_a_reason(args, kwargs, message) -> None:
    with pytest.raises((ValueError, CheckpointError), match=message):
        build(*args, **{"preset": "tiny", **kwargs})


# -------------------------------------------------------------------------------- text encoder
def test_tiny_clip_saves_and_loads_with_identical_states(tmp_path: Path) -> None:
    encoder = build_tiny_clip(seed=3)
    assert isinstance(encoder, TextEncoder)
    prompts = ["a photo of a cat", "", "Ünïcode & punctuation!"]
    before = encoder.encode(prompts)
    encoder.save(tmp_path)
    for name in ("vocab.json", "merges.txt"):  # what older transformers' CLIPTokenizer reads
        assert (tmp_path / "tokenizer" / name).is_file()
    assert (tmp_path / "tokenizer" / "merges.txt").read_text().startswith("#version: 0.2")
    loaded = load_text_encoder(tmp_path)
    assert isinstance(loaded, CLIPTextEncoder)
    assert torch.allclose(loaded.encode(prompts), before, atol=1e-6)
    tokens = encoder.tokenizer(["cat"]).input_ids[0]
    assert tokens[0] == encoder.tokenizer.bos_token_id and tokens[-1] == encoder.tokenizer.eos_token_id


def test_text_encoders_are_chosen_by_model_type(tmp_path: Path) -> None:
    (tmp_path / "text_encoder").mkdir()
    (tmp_path / "text_encoder" / "config.json").write_text(json.dumps({"model_type": "minilm-test"}))
    with pytest.raises(TextEncoderError, match="unknown text encoder model_type 'minilm-test'"):
        load_text_encoder(tmp_path)

    class Fixed:
        width, max_length = 8, 4

        def encode(self, prompts):
            return torch.zeros(len(prompts), 4, 8)

        def save(self, checkpoint_folder) -> None:
            pass

    register_text_encoder("minilm-test", lambda folder, device, dtype: Fixed())
    assert load_text_encoder(tmp_path).encode(["x"]).shape == (1, 4, 8)
    with pytest.raises(TextEncoderError, match="missing"):
        load_text_encoder(tmp_path / "nowhere")


# ------------------------------------------------------------------------- diffedit models CLI
def test_models_new_then_info(tmp_path: Path, capsys) -> None:
    out = tmp_path / "inpaint"
    assert main(["new", "--task", "inpaint", "--preset", "tiny", "--out", str(out), "--seed", "5"]) == 0
    assert "wrote" in capsys.readouterr().out
    manifest = read_manifest(out)
    assert (manifest.task, manifest.conditioning, manifest.mask_channel, manifest.made.seed) == \
        ("inpaint", "concat", True, 5)
    assert main(["info", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "inpaint" in text and "mask channel" in text and "SHA-256 verified" in text
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((out / "diffedit.json").read_text())


def test_models_new_is_deterministic_for_a_seed(tmp_path: Path, capsys) -> None:
    def unet_hash(folder: str, seed: str) -> str:
        assert main(["new", "--task", "generate", "--preset", "tiny", "--num-classes", "3",
                     "--out", str(tmp_path / folder), "--seed", seed]) == 0
        return read_manifest(tmp_path / folder).made.weights_sha256["unet/diffusion_pytorch_model.safetensors"]

    assert unet_hash("a", "1") == unet_hash("b", "1") != unet_hash("c", "2")
    assert read_manifest(tmp_path / "a").class_names == ["0", "1", "2"]
    capsys.readouterr()


@pytest.mark.parametrize("argv", [
    [],
    ["new", "--task", "paint", "--out", "{tmp}/x"],
    ["info", "{tmp}/missing"],
    ["new", "--task", "generate", "--preset", "tiny", "--out", "{tmp}/x", "--image-size", "30"],
    ["new", "--task", "generate", "--preset", "tiny", "--out", "{tmp}/x", "--conditioning", "class"],
    ["new", "--task", "generate", "--preset", "tiny", "--out", "{tmp}/taken"],
])
def test_models_errors_exit_1_with_one_line(tmp_path: Path, capsys, argv) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffedit models: error:"), captured.err
    assert "Traceback" not in captured.err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "x").exists()


def test_models_info_names_a_stable_diffusion_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    assert main(["info", str(tmp_path)]) == 0
    assert "StableDiffusionInpaintPipeline" in capsys.readouterr().out


def test_importing_and_models_info_stay_light(saved_checkpoint) -> None:
    """Reading manifests (models info, the model list in the GUI) must not pay for torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom diffedit.diffusion import models, checkpoints, text, devices, tiling\n"
            "from diffedit.commands.models import main\n"
            f"assert main(['info', {str(saved_checkpoint('text'))!r}]) == 0\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'diffusers', 'transformers'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
