"""Every built-in task end to end on tiny random models, on the CPU, in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from diffedit.diffusion.engine import TaskError
from diffedit.tasks.base import RunContext, TaskRequest
from diffedit.tasks.cancel import Cancelled, CancelToken
from diffedit.tasks.params import make_params
from diffedit.tasks.runner import TaskInputError, run_task


def run(registry, task: str, model: str | None, image=None, mask=None, context=None, **values):
    params = make_params(registry.tasks[task].params, {"steps": 3, "seed": 7, **values})
    request = TaskRequest(task=task, params=params, model=model, image=image, mask=mask, device="cpu")
    return run_task(request, registry, context)


def test_all_builtin_tasks_are_registered(registry) -> None:
    assert {"generate", "img2img", "inpaint", "outpaint", "super-resolve", "restore", "segment"} <= set(registry.tasks)


@pytest.mark.parametrize("kind", ["generate", "latent-generate"])
def test_generate_is_reproducible_and_recorded(registry, checkpoint, kind: str) -> None:
    a = run(registry, "generate", checkpoint(kind))
    b = run(registry, "generate", checkpoint(kind))
    c = run(registry, "generate", checkpoint(kind), seed=8)
    size = 64 if kind.startswith("latent") else 32
    assert a.image.shape == (size, size, 4) and a.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert a.record.seed == 7 and a.record.steps == 3 and a.record.sampler == "ddim" and a.record.model_hash
    assert a.record.params["width"] == size


def test_generate_by_class_and_by_prompt(registry, checkpoint) -> None:
    cat = run(registry, "generate", checkpoint("class"), class_name="cat", guidance_scale=2.0)
    dog = run(registry, "generate", checkpoint("class"), class_name="dog", guidance_scale=2.0)
    assert not np.array_equal(cat.image, dog.image) and cat.record.params["class_name"] == "cat"
    with pytest.raises(TaskError, match="no class 'horse'; its classes are: cat, dog"):
        run(registry, "generate", checkpoint("class"), class_name="horse")
    red = run(registry, "generate", checkpoint("text"), prompt="a red fox", guidance_scale=4.0)
    blue = run(registry, "generate", checkpoint("text"), prompt="a blue bird", guidance_scale=4.0)
    assert not np.array_equal(red.image, blue.image) and "a red fox" in red.record.to_parameters_text()


def test_generate_at_another_size_and_a_bad_size(registry, checkpoint) -> None:
    out = run(registry, "generate", checkpoint("generate"), width=48, height=16)
    assert out.image.shape == (16, 48, 4)
    with pytest.raises(TaskError, match="multiples of 4"):
        run(registry, "generate", checkpoint("generate"), width=30)


def test_img2img_strength(registry, checkpoint, photo) -> None:
    same = run(registry, "img2img", checkpoint("generate"), image=photo, strength=0.0)
    assert np.array_equal(same.image, photo)  # nothing to denoise at strength 0
    moved = run(registry, "img2img", checkpoint("generate"), image=photo, strength=0.7, steps=6)
    assert moved.image.shape == photo.shape and not np.array_equal(moved.image, photo)
    paired = run(registry, "img2img", checkpoint("img2img"), image=photo, strength=0.5, steps=4)
    assert paired.image.shape == photo.shape


@pytest.mark.parametrize("kind,method", [("inpaint", "auto"), ("generate", "auto"), ("inpaint", "repaint"),
                                         ("latent-inpaint", "auto")])
def test_inpaint_keeps_everything_outside_the_mask_exactly(registry, checkpoint, photo, hole, kind, method) -> None:
    from diffedit.commands.run import flatten_result

    result = run(registry, "inpaint", checkpoint(kind), image=photo, mask=hole, method=method, feather=3)
    flat = flatten_result(result, photo)
    assert np.array_equal(flat[hole == 0], photo[hole == 0])
    assert (flat[hole == 255] != photo[hole == 255]).any()
    x, y = result.offset
    patch_alpha = result.image[..., 3]
    assert patch_alpha.max() == 255  # fully generated inside, feathered at the seam
    assert 0 < patch_alpha[12 - y, 22 - x + 7] < 255  # on the mask's top edge: soft


def test_inpaint_input_errors(registry, checkpoint, photo, hole) -> None:
    with pytest.raises(TaskInputError, match="mask is empty"):
        run(registry, "inpaint", checkpoint("inpaint"), image=photo, mask=np.zeros_like(hole))
    with pytest.raises(TaskInputError, match="the mask is 10x10 but the image is 56x40"):
        run(registry, "inpaint", checkpoint("inpaint"), image=photo, mask=np.full((10, 10), 255, np.uint8))
    with pytest.raises(TaskInputError, match="needs a mask"):
        run(registry, "inpaint", checkpoint("inpaint"), image=photo)
    with pytest.raises(TaskError, match="not an inpainting model"):
        run(registry, "inpaint", checkpoint("generate"), image=photo, mask=hole, method="conditioned")
    with pytest.raises(TaskError, match="is a 'segment' model"):
        run(registry, "inpaint", checkpoint("segment"), image=photo, mask=hole)


def test_outpaint_grows_the_canvas_and_keeps_the_image(registry, checkpoint, photo) -> None:
    from diffedit.commands.run import flatten_result

    result = run(registry, "outpaint", checkpoint("inpaint"), image=photo, left=8, top=4, right=12, feather=3)
    assert result.canvas_size == (56 + 20, 40 + 4) and result.offset == (-8, -4)
    flat = flatten_result(result, photo)
    assert flat.shape == (44, 76, 4)
    assert (flat[..., 3] == 255).all()  # the new area is filled completely
    assert np.array_equal(flat[4 + 3 :, 8 + 3 : 64 - 3], photo[3:, 3:-3])  # the old image, but for the seam band
    assert not np.array_equal(flat[:4], np.zeros_like(flat[:4]))
    with pytest.raises(TaskError, match="at least one side"):
        run(registry, "outpaint", checkpoint("inpaint"), image=photo)


def test_super_resolve_in_tiles(registry, checkpoint, photo) -> None:
    result = run(registry, "super-resolve", checkpoint("super-resolve"), image=photo, tile=48, overlap=16)
    assert result.image.shape == (80, 112, 4) and result.scale == 2
    again = run(registry, "super-resolve", checkpoint("super-resolve"), image=photo, tile=48, overlap=16)
    assert np.array_equal(result.image, again.image)
    with pytest.raises(TaskError, match="upscales x2, not x4"):
        run(registry, "super-resolve", checkpoint("super-resolve"), image=photo, scale=4)


def test_restore_from_the_degraded_image_and_by_degradation(registry, checkpoint, photo) -> None:
    near = run(registry, "restore", checkpoint("restore"), image=photo, strength=0.1, steps=10)
    far = run(registry, "restore", checkpoint("restore"), image=photo, start="noise", steps=3)
    err_near = np.abs(near.image.astype(int) - photo).mean()
    err_far = np.abs(far.image.astype(int) - photo).mean()
    assert err_near < err_far  # starting from the input keeps it (an untrained model only adds noise)
    noise = run(registry, "restore", checkpoint("restore-class"), image=photo, degradation="noise")
    jpeg = run(registry, "restore", checkpoint("restore-class"), image=photo, degradation="jpeg")
    assert not np.array_equal(noise.image, jpeg.image)


def test_segment_returns_a_mask(registry, checkpoint, photo) -> None:
    result = run(registry, "segment", checkpoint("segment"), image=photo)
    assert result.image is None and result.mask.shape == (40, 56)
    assert set(np.unique(result.mask)) <= {0, 255}
    assert registry.tasks["segment"].output == "mask"


def test_progress_previews_and_cancel(registry, checkpoint) -> None:
    seen = []
    ctx = RunContext(progress=seen.append, preview_every=1)
    run(registry, "generate", checkpoint("latent-generate"), context=ctx, steps=4)
    assert [p.step for p in seen] == [1, 2, 3, 4] and all(p.total == 4 for p in seen)
    assert seen[-1].preview is not None and seen[-1].preview.shape == (64, 64, 4)  # latents -> cheap RGB

    token = CancelToken()
    steps = []

    def cancel_after_two(p) -> None:
        steps.append(p.step)
        if p.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        run(registry, "generate", checkpoint("generate"), context=RunContext(cancel=token, progress=cancel_after_two),
            steps=10)
    assert steps == [1, 2]  # stopped within one step


def test_every_builtin_sampler_runs_a_task(registry, checkpoint) -> None:
    for name in registry.samplers:
        out = run(registry, "generate", checkpoint("generate"), sampler=name, steps=2)
        assert out.image.shape == (32, 32, 4) and out.record.sampler == name
    with pytest.raises(TaskError, match="unknown sampler 'nope'"):
        run(registry, "generate", checkpoint("generate"), sampler="nope")


def test_repaint_resampling(registry, checkpoint, photo, hole) -> None:
    from diffedit.commands.run import flatten_result

    seen = []
    ctx = RunContext(progress=seen.append)
    result = run(registry, "inpaint", checkpoint("generate"), image=photo, mask=hole, resample=3, steps=4,
                 context=ctx)
    assert np.array_equal(flatten_result(result, photo)[hole == 0], photo[hole == 0])
    assert seen[-1].evaluations == 3 * 3 + 1  # every step but the last is done three times
    plain = run(registry, "inpaint", checkpoint("generate"), image=photo, mask=hole, steps=4)
    assert not np.array_equal(result.image, plain.image)
    with pytest.raises(TaskError, match="resampling needs a sampler without step memory"):
        run(registry, "inpaint", checkpoint("generate"), image=photo, mask=hole, resample=2, sampler="dpmpp-2m")
