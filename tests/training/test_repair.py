"""The multi-task residual "repair" model: smooth hole fill, manifest keys, its training batches, and
the contract that the tasks feed it exactly what it was trained on (a zero-output UNet must give
back the degraded input itself: the engine adds the condition)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from diffedit.diffusion.checkpoints import save_checkpoint
from diffedit.diffusion.fill import smooth_fill
from diffedit.diffusion.models import CheckpointError, Manifest, build
from diffedit.models_registry import default_model_for, find_models
from diffedit.plugins import PluginHost
from diffedit.settings import Settings
from diffedit.tasks.base import TaskRequest
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task
from diffedit.training import repair
from diffedit.training.data import random_patch
from diffedit.training.loop import Trainer


@pytest.fixture(scope="module")
def registry():
    return PluginHost(settings=Settings(), autoload=False).discover()


def _repair_bundle(seed: int = 0):
    return build("restore", "class", "tiny", 16, class_names=repair.CLASSES, condition_channels=3,
                 mask_channel=True, prediction_type="sample", residual=True,
                 tasks=repair.TASKS, scale_factors=repair.SCALE_FACTORS, scale_factor=2, hole_fill="smooth",
                 seed=seed, default_steps=1)


@pytest.fixture(scope="module")
def zero_repair_model(tmp_path_factory) -> Path:
    """A repair model whose UNet always outputs zero: its result is its condition, nothing else."""
    bundle = _repair_bundle()
    with torch.no_grad():
        for p in bundle.unet.conv_out.parameters():
            p.zero_()
    folder = tmp_path_factory.mktemp("zero") / "repair"
    save_checkpoint(folder, bundle)
    return folder


def _photo(h: int = 24, w: int = 32) -> np.ndarray:
    px = np.zeros((h, w, 4), np.uint8)
    px[..., 0] = np.arange(w)[None, :] * 7
    px[..., 1] = np.arange(h)[:, None] * 9
    px[6:16, 10:22, 2] = 200
    px[..., 3] = 255
    return px


def _run(registry, task: str, model: Path, image: np.ndarray, mask: np.ndarray | None = None, **values):
    params = make_params(registry.tasks[task].params, {"seed": 3, **values})
    return run_task(TaskRequest(task=task, params=params, model=str(model), image=image, mask=mask, device="cpu"),
                    registry)


# -- smooth fill ------------------------------------------------------------------------------------
def test_smooth_fill_keeps_known_pixels_and_interpolates_the_hole() -> None:
    ramp = torch.linspace(-1, 1, 40).view(1, 1, 1, 40).expand(1, 3, 30, 40).clone()
    hole = torch.zeros(1, 1, 30, 40)
    hole[..., 8:22, 15:25] = 1
    filled = smooth_fill(ramp, hole)
    known = hole[0, 0] < 0.5
    assert torch.equal(filled[0, :, known], ramp[0, :, known])
    inside = filled[0, 0][~known]
    assert inside.min() >= ramp[0, 0, 0, 14] - 0.05 and inside.max() <= ramp[0, 0, 0, 25] + 0.05
    assert float((inside - ramp[0, 0][~known]).abs().mean()) < 0.01  # continues the ramp
    # a constant image is filled with that constant, at any size (odd sizes included)
    flat = torch.full((2, 3, 17, 23), 0.25)
    hole = torch.zeros(2, 1, 17, 23)
    hole[0, :, 3:12, 4:19] = 1
    assert torch.allclose(smooth_fill(flat, hole), flat, atol=1e-6)


# -- manifest ---------------------------------------------------------------------------------------
def test_manifest_round_trips_the_repair_keys_and_refuses_inconsistent_ones() -> None:
    m = _repair_bundle().manifest
    again = Manifest.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m and again.served_tasks == ["restore", "super-resolve", "inpaint"]
    assert again.upscale_factors == [2, 4] and again.default_steps == 1 and again.hole_fill == "smooth"
    base = m.to_json()
    for change, words in (({"prediction_type": "epsilon"}, "residual"), ({"tasks": ["paint"]}, "unknown task"),
                          ({"hole_fill": "blur"}, "hole_fill"), ({"default_steps": 0}, "default_steps"),
                          ({"scale_factors": [2, "4"]}, "scale_factors")):
        with pytest.raises(CheckpointError, match=words):
            Manifest.from_json({**base, **change})


def test_a_multi_task_model_is_listed_and_chosen_for_each_task_it_serves(tmp_path) -> None:
    folder = tmp_path / "models" / "repair"
    save_checkpoint(folder, _repair_bundle())
    data = json.loads((folder / "diffedit.json").read_text())
    data["default"] = True
    (folder / "diffedit.json").write_text(json.dumps(data))
    (entry,) = find_models([tmp_path / "models"])
    assert entry.tasks == ["restore", "super-resolve", "inpaint"] and entry.serves("inpaint")
    for task in ("restore", "super-resolve", "inpaint"):
        assert default_model_for(task, [tmp_path / "models"]) == str(folder)
    assert default_model_for("segment", [tmp_path / "models"]) is None


# -- training batches -------------------------------------------------------------------------------
def test_repair_batches_mix_degradations_and_mark_only_holes() -> None:
    rng = np.random.default_rng(0)
    images = [np.asarray(_photo(32, 32)[..., :3]) for _ in range(40)]
    x, cond, mask, labels = repair.repair_tensors(images, rng)
    assert x.shape == cond.shape == (40, 3, 32, 32) and mask.shape == (40, 1, 32, 32)
    holes = mask.flatten(1).amax(1) > 0
    assert torch.equal(holes, labels == repair.CLASSES.index("inpaint"))  # the hole rows are the inpaint class
    assert set(labels.tolist()) == set(range(len(repair.CLASSES)))
    assert 0 < int(holes.sum()) < 40  # some rows inpaint, the others restore or upscale
    for i in range(40):
        outside = mask[i, 0] < 0.5
        if holes[i]:  # the hole's condition is the clean image outside it, smoothly filled inside
            assert torch.equal(cond[i][:, outside], x[i][:, outside])
        else:  # a degraded image differs from the clean one somewhere
            assert not torch.equal(cond[i], x[i])


def test_patches_keep_the_file_scale() -> None:
    from PIL import Image

    arr = (np.arange(64 * 48 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    img = Image.fromarray(arr)
    patch, _ = random_patch(img, 16, np.random.default_rng(0), (1.0, 0.0, 0.0, 0.0))
    assert np.array_equal(np.asarray(patch), arr[:16, :16])  # scale 1: the file's own pixels
    patch, _ = random_patch(img, 16, np.random.default_rng(0), (0.5, 1.0, 1.0, 5.0))
    assert patch.size == (16, 16)


# -- the tasks feed what it was trained on ----------------------------------------------------------
def test_a_zero_output_repair_model_returns_its_condition(registry, zero_repair_model) -> None:
    image = _photo()
    restored = _run(registry, "restore", zero_repair_model, image)
    assert restored.record.steps == 1  # steps 0 = the model's default_steps
    assert np.abs(restored.image[..., :3].astype(int) - image[..., :3]).max() <= 1
    from PIL import Image

    up = _run(registry, "super-resolve", zero_repair_model, image, scale=4)
    bicubic = np.asarray(Image.fromarray(image, "RGBA").resize((128, 96), Image.Resampling.BICUBIC))
    assert up.image.shape == (96, 128, 4) and np.abs(up.image[..., :3].astype(int) - bicubic[..., :3]).max() <= 1
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[8:14, 12:20] = 255
    filled = _run(registry, "inpaint", zero_repair_model, image, mask=mask, feather=0)
    x0, y0 = filled.offset
    patch = filled.image
    hole = mask[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] >= 128
    assert (patch[..., 3][hole] == 255).all() and (patch[..., 3][~hole] == 0).all()
    inside = patch[..., :3][hole].astype(int)
    # the smooth fill stays close to the colours around the hole (the blue square it lies in)
    ring = image[6:16, 10:22, :3].reshape(-1, 3).astype(int)
    assert (inside >= ring.min(0) - 25).all() and (inside <= ring.max(0) + 25).all()


def test_repair_training_runs_every_task(image_folder, tiny, tmp_path, registry) -> None:
    root = image_folder(n=6, size=24)
    trainer = Trainer(tiny(root, tmp_path / "out", task="repair", steps=3))
    assert trainer.crop == "patch"
    list(trainer.run())
    model = trainer.last_checkpoint
    assert model is not None and trainer.manifest.residual and trainer.manifest.tasks
    image = _photo()
    assert _run(registry, "restore", model, image, steps=2).image.shape == (24, 32, 4)
    assert _run(registry, "super-resolve", model, image, scale=2).image.shape == (48, 64, 4)
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[8:14, 12:20] = 255
    result = _run(registry, "inpaint", model, image, mask=mask)
    assert result.image.dtype == np.uint8 and result.record.model_hash


def test_repair_tensors_fill_only_the_rows_with_a_hole(monkeypatch) -> None:
    """The fill runs on the hole rows only (it is most of a batch's CPU time); the result is what
    filling the whole batch gave: rows without a hole keep their degraded pixels exactly."""
    images = [np.asarray(_photo(32, 32)[..., :3]) for _ in range(24)]
    x, cond, mask, labels = repair.repair_tensors(images, np.random.default_rng(5))
    with monkeypatch.context() as m:  # the same draws without any fill: the degraded pixels themselves
        m.setattr(repair, "smooth_fill", lambda pixels, hole: pixels)
        x_raw, raw, mask_raw, labels_raw = repair.repair_tensors(images, np.random.default_rng(5))
    assert torch.equal(x, x_raw) and torch.equal(mask, mask_raw) and torch.equal(labels, labels_raw)
    holes = mask.flatten(1).amax(1) > 0
    assert 0 < int(holes.sum()) < 24
    assert torch.equal(cond, smooth_fill(raw, mask))  # the whole batch filled at once, as before
    for i in range(24):
        if not holes[i]:
            assert torch.equal(cond[i], raw[i])
            continue
        inside = mask[i, 0] > 0.5
        assert torch.equal(cond[i][:, ~inside], raw[i][:, ~inside])
        assert not torch.equal(cond[i][:, inside], raw[i][:, inside])  # filled from the border
        assert not (cond[i][:, inside] == 0).all()
    # batches without any hole, and with nothing but holes
    monkeypatch.setattr(repair, "DEGRADATIONS", {"noise": 1.0})
    _, cond, mask, _ = repair.repair_tensors(images[:4], np.random.default_rng(1))
    assert not mask.any() and cond.shape == (4, 3, 32, 32)
    monkeypatch.setattr(repair, "DEGRADATIONS", {"hole": 1.0})
    x, cond, mask, _ = repair.repair_tensors(images[:4], np.random.default_rng(1))
    assert (mask.flatten(1).amax(1) > 0).all()
    assert torch.equal(cond, smooth_fill(x, mask))  # a hole's degraded image is the clean one, then filled


# -- the conv preset --------------------------------------------------------------------------------
def test_the_conv_preset_has_no_attention_levels_and_runs_on_any_multiple_of_8() -> None:
    from diffusers.models.attention_processor import Attention

    bundle = build("restore", "class", "conv", 64, class_names=repair.CLASSES, condition_channels=3,
                   mask_channel=True, prediction_type="sample", residual=True, tasks=repair.TASKS,
                   scale_factors=repair.SCALE_FACTORS, scale_factor=2, hole_fill="smooth", seed=0, default_steps=1)
    unet = bundle.unet
    assert not any("Attn" in block for block in (*unet.config.down_block_types, *unet.config.up_block_types))
    attending = [name for name, module in unet.named_modules() if isinstance(module, Attention)]
    assert not [name for name in attending if not name.startswith("mid_block.")]  # no level attends
    assert unet.config.in_channels == 7 and len(unet.config.block_out_channels) == 4
    sample = torch.randn(1, 7, 40, 56, generator=torch.Generator().manual_seed(0))  # 8 | 40, 56; 64 does not
    with torch.no_grad():
        out = unet(sample, torch.tensor([999]), class_labels=torch.tensor([repair.CLASSES.index("x2")])).sample
    assert out.shape == (1, 3, 40, 56) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiple of 8"):
        build("restore", "class", "conv", 20, class_names=repair.CLASSES, condition_channels=3, mask_channel=True)


# -- self-ensemble ------------------------------------------------------------------------------------
def test_the_eight_orientations_are_distinct_and_undone_exactly() -> None:
    from diffedit.diffusion.image_tasks import DIHEDRAL, _oriented, _unoriented

    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    seen = set()
    for turns, flip in DIHEDRAL:
        turned = _oriented(x, turns, flip)
        assert turned.shape[2:] == ((7, 5) if turns % 2 else (5, 7))
        assert torch.equal(_unoriented(turned, turns, flip), x)
        seen.add(tuple(turned.flatten().tolist()))
    assert len(DIHEDRAL) == len(seen) == 8


def test_the_self_ensemble_keeps_what_every_orientation_agrees_on(registry, zero_repair_model, tmp_path) -> None:
    image = _photo(24, 40)  # not square: turned orientations are 40 x 24
    for task, extra in (("restore", {}), ("super-resolve", {"scale": 2})):
        single = _run(registry, task, zero_repair_model, image, **extra)
        both = _run(registry, task, zero_repair_model, image, ensemble=True, **extra)
        assert both.image.shape == single.image.shape
        assert np.abs(both.image.astype(int) - single.image.astype(int)).max() <= 1
    # a model whose result depends on orientation: the ensemble is the average, not any one result
    folder = tmp_path / "random"
    save_checkpoint(folder, _repair_bundle(seed=3))
    single = _run(registry, "restore", folder, image)
    both = _run(registry, "restore", folder, image, ensemble=True)
    assert both.image.shape == single.image.shape and not np.array_equal(both.image, single.image)


def test_tiles_sampled_in_batches_give_the_tile_by_tile_result(registry, tmp_path, monkeypatch) -> None:
    """On a GPU tiles go through the UNet in batches (image_tasks.tile_batch); each tile's start noise
    is drawn as alone, so a deterministic sampler gives the same image, and progress still ends at 100%."""
    from diffedit.diffusion import image_tasks
    from diffedit.tasks.base import RunContext

    folder = tmp_path / "random"
    save_checkpoint(folder, _repair_bundle(seed=3))
    image = _photo(70, 90)  # tiny preset: 32 px tiles, 4 x 5 of them

    def run(batch: int, **values) -> tuple[np.ndarray, list[tuple[int, int]]]:
        monkeypatch.setattr(image_tasks, "tile_batch", lambda run, tile: batch)
        ticks: list[tuple[int, int]] = []
        params = make_params(registry.tasks["restore"].params, {"seed": 3, **values})
        request = TaskRequest(task="restore", params=params, model=str(folder), image=image, device="cpu")
        result = run_task(request, registry, RunContext(progress=lambda p: ticks.append((p.step, p.total))))
        return result.image, ticks

    for values in ({"steps": 1}, {"steps": 3, "sampler": "ddim"}, {"steps": 1, "ensemble": True}):
        alone, alone_ticks = run(1, **values)
        batched, ticks = run(6, **values)
        assert np.abs(batched.astype(int) - alone.astype(int)).max() <= 1, values
        assert ticks[-1][0] == ticks[-1][1] == alone_ticks[-1][1], values
        assert [s for s, _ in ticks] == sorted(s for s, _ in ticks) and len(ticks) < len(alone_ticks), values
    # a different seed gives different noise: the comparison above is not vacuous
    other, _ = run(6, steps=3, sampler="ddim", seed=4)
    assert not np.array_equal(other, run(6, steps=3, sampler="ddim")[0])


def test_tile_batch_is_one_on_the_cpu_and_bounded_on_a_gpu() -> None:
    from types import SimpleNamespace

    from diffedit.diffusion.image_tasks import TILE_BATCH_MAX, tile_batch

    cpu, gpu = SimpleNamespace(device=torch.device("cpu")), SimpleNamespace(device=torch.device("cuda"))
    assert tile_batch(cpu, 128) == 1
    assert tile_batch(gpu, 128) == TILE_BATCH_MAX and tile_batch(gpu, 256) == 4 and tile_batch(gpu, 1024) == 1
