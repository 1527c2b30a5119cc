"""Training data: folder layouts, checks before training, deterministic splits and batches,
and degradations built exactly as the task runners build their conditions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from diffedit.training import data, degrade


def test_classes_captions_masks_and_skipped_files(image_folder) -> None:
    root = image_folder(n=6, classes=("cats", "dogs"), captions=True, masks=True)
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "loose.png").write_bytes(Image.new("RGB", (8, 8)).tobytes()[:10])  # not an image at all
    (root / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".hidden" / "x.png")
    index = data.scan(root, labels=True, captions=True, masks=True)
    assert index.class_names == ["cats", "dogs"] and len(index.items) == 6
    assert {i.label for i in index.items} == {0, 1} and index.captions == 6 and index.masks == 6
    assert sorted(p.name for p, _ in index.skipped) == ["broken.png", "loose.png"]
    summary = data.summarize(root, "generate", "class")
    assert (summary.images, summary.classes, summary.captions, summary.skipped) == (6, 2, 0, 2)
    assert data.summarize(root, "segment").masks == 6


@pytest.mark.parametrize("case,match", [
    ("empty", "no usable images"), ("batch", "fewer than the batch size 16"),
    ("captions", "1 of 6 images have no caption"), ("masks", "have no mask"), ("classes", "at least 1 sub-folder"),
])
def test_data_errors_before_training(image_folder, tiny, tmp_path, case, match) -> None:
    from diffedit.training.loop import Trainer

    root = image_folder(n=6, captions=case == "captions")
    overrides = {"batch": 16 if case == "batch" else 2}
    if case == "empty":
        root = tmp_path / "nothing"
        root.mkdir()
    if case == "captions":
        (root / "img03.txt").unlink()
        overrides["conditioning"] = "text"
    if case == "masks":
        overrides["task"] = "segment"
    if case == "classes":
        overrides["conditioning"] = "class"
    with pytest.raises(data.DataError, match=match):
        Trainer(tiny(root, tmp_path / "out", **overrides))
    assert not (tmp_path / "out").exists()


def test_split_and_batches_are_deterministic_and_sharded() -> None:
    assert data.split(20, 0.2, 1) == data.split(20, 0.2, 1) != data.split(20, 0.2, 2)
    train, val = data.split(20, 0.2, 1)
    assert len(val) == 4 and sorted(train + val) == list(range(20))
    assert data.split(5, 0.2, 1) == ([0, 1, 2, 3, 4], [])  # too few images to hold any out
    epoch = [i for s in range(5) for i in data.batch_indices(10, 2, s, seed=3)]
    assert sorted(epoch) == list(range(10))  # every image once per epoch
    r0 = data.batch_indices(10, 2, 0, seed=3, rank=0, world=2)
    r1 = data.batch_indices(10, 2, 0, seed=3, rank=1, world=2)
    assert not set(r0) & set(r1)


def test_crops_flip_and_masks_share_geometry(image_folder) -> None:
    root = image_folder(n=2, masks=True, size=24)
    item = data.scan(root, masks=True).items[0]
    for seed in range(4):
        ex = data.load_example(item, 16, 3, np.random.default_rng(seed))
        assert ex.image.shape == (16, 16, 3) and ex.mask is not None and ex.mask.shape == (16, 16)
        agree = np.mean((ex.mask == 255) == (ex.image[..., 0] > 135))
        assert ex.mask.any() and agree > 0.95  # the disc and its mask line up (edges are resampled)


def test_super_resolve_condition_is_the_runner_upsample() -> None:
    from diffedit_builtin_superres.run import upsample

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    low = degrade.downscale(img, 4)
    rgba = np.dstack([low, np.full(low.shape[:2], 255, np.uint8)])
    assert low.shape == (4, 4, 3)
    assert np.array_equal(degrade.super_resolve_condition(img, 4), upsample(rgba, 4)[..., :3])


def test_degradations() -> None:
    rng = np.random.default_rng(0)
    img = np.full((16, 16, 3), 128, np.uint8)
    noisy = degrade.gaussian_noise(img, rng, sigma=20)
    assert noisy.dtype == np.uint8 and 10 < noisy.astype(float).std() < 30
    photo = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert not np.array_equal(degrade.jpeg(photo, rng, quality=10), photo)
    for _ in range(20):
        m = degrade.brush_mask(32, rng)
        assert m.shape == (32, 32) and set(np.unique(m)) == {0, 255}


def test_inpaint_condition_matches_the_inpaint_task() -> None:
    """[image with the hole zeroed, mask], as inpaint_pixels builds it for the 'conditioned' method."""
    from diffedit.diffusion.models import build
    from diffedit.training.objective import make_batch, model_space

    manifest = build("inpaint", preset="tiny", image_size=16).manifest
    img = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    batch = make_batch([data.Example(img, -1, "", None)], manifest, np.random.default_rng(0))
    x0, cond = model_space(batch, None, __import__("torch").device("cpu"))
    m = batch.mask
    assert cond.shape == (1, 4, 16, 16) and set(m.unique().tolist()) == {0.0, 1.0}
    assert (cond[:, :3][m.expand(-1, 3, -1, -1) == 1] == 0).all()
    assert np.allclose(cond[:, :3][m.expand(-1, 3, -1, -1) == 0], x0[m.expand(-1, 3, -1, -1) == 0])
    assert np.array_equal(cond[:, 3:], m)


@pytest.mark.parametrize("task,crop", [("repair", "auto"), ("generate", "patch")])
def test_patch_batches_may_hold_more_crops_than_the_folder_has_images(image_folder, tiny, tmp_path, task,
                                                                      crop) -> None:
    """Patches: one photo gives a whole batch of different crops, so 3 photos can fill a batch of 8."""
    import math

    from diffedit.training.loop import Trainer

    root = image_folder(n=3, size=24)
    trainer = Trainer(tiny(root, tmp_path / "out", task=task, crop=crop, batch=8, steps=2, val_fraction=0.34))
    assert trainer.crop == "patch" and len(trainer.train_items) + len(trainer.val_items) == 3
    batch, _ = trainer._micro_batch(0, 0)
    assert batch.x.shape == (8, 3, 16, 16)
    # different crops, not the same few images repeated (a flat corner of a blob image may repeat)
    assert len({bytes(row.numpy()) for row in batch.x}) > len(trainer.train_items)
    progress = list(trainer.run())
    assert [p.step for p in progress] == [1, 2] and all(math.isfinite(p.loss) for p in progress)
    assert progress[-1].checkpoint


@pytest.mark.parametrize("crop", ["resize", "auto"])
def test_whole_image_batches_still_need_as_many_images_as_the_batch(image_folder, tiny, tmp_path, crop) -> None:
    from diffedit.training.loop import Trainer

    root = image_folder(n=3, size=24)
    with pytest.raises(data.DataError, match="3 usable images, fewer than the batch size 8"):
        Trainer(tiny(root, tmp_path / "out", task="generate", crop=crop, batch=8))
    assert not (tmp_path / "out").exists()
