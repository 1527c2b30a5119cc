"""Tests of the example plugin, using the fixtures DiffEdit ships to plugin authors (pytest11)."""

import diffedit_sharpen
import numpy as np

from diffedit.tasks.params import make_params
from diffedit.tasks.runner import run_task


def test_the_plugin_registers_its_task(diffedit_plugin_host) -> None:
    host = diffedit_plugin_host(diffedit_sharpen)
    assert "sharpen" in host.registry.tasks
    assert host.records["diffedit_sharpen"].status == "loaded"


def test_sharpen_increases_edge_contrast_only_inside_the_mask(diffedit_plugin_host, make_task_request) -> None:
    host = diffedit_plugin_host(diffedit_sharpen)
    image = np.zeros((32, 32, 4), np.uint8)
    image[..., 3] = 255
    image[:, 16:, :3] = 200
    image[:, :16, :3] = 50
    mask = np.zeros((32, 32), np.uint8)
    mask[:16] = 255
    params = make_params(host.registry.tasks["sharpen"].params, {"amount": 2.0})
    result = run_task(make_task_request("sharpen", params, image=image, mask=mask), host.registry)
    out = result.image.astype(int)
    assert out[5, 17, 0] > 200 and out[5, 14, 0] < 50  # overshoot at the edge inside the mask
    assert np.array_equal(out[20:], image[20:].astype(int))  # untouched outside
