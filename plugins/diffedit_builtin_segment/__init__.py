"""Built-in plugin: segmentation, a diffusion model conditioned on the image that draws a mask."""

from __future__ import annotations

from dataclasses import dataclass

from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.params import SamplingParams, param
from diffedit.tasks.registry import Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@dataclass
class SegmentParams(SamplingParams):
    threshold: float = param(0.5, label="Threshold", help="mask values above this become selected (0: keep soft)",
                             minimum=0.0, maximum=1.0, widget="slider")
    tile: int = param(0, label="Tile size", help="process in tiles of this many pixels (0: automatic)", minimum=0,
                      maximum=4096)


@hookimpl
def diffedit_register_tasks(registry: Registry) -> None:
    registry.add_task(TaskSpec(
        name="segment", label="Segment", description="Draw a mask of the object the model was trained on",
        params=SegmentParams, runner="diffedit_builtin_segment.run:run_segment", inputs=("image",),
        output="mask", model_tasks=("segment",),
    ))
