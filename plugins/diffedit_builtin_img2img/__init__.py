"""Built-in plugin: image-to-image (SDEdit with a strength; paired img2img models are conditioned too)."""

from __future__ import annotations

from dataclasses import dataclass

from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.params import ConditioningParams, param
from diffedit.tasks.registry import Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@dataclass
class Img2ImgParams(ConditioningParams):
    strength: float = param(0.6, label="Strength", help="how far to move from the input (1: ignore it)",
                            minimum=0.0, maximum=1.0, widget="slider")


@hookimpl
def diffedit_register_tasks(registry: Registry) -> None:
    registry.add_task(TaskSpec(
        name="img2img", label="Image to image", description="Redraw the image, keeping its layout (SDEdit)",
        params=Img2ImgParams, runner="diffedit_builtin_img2img.run:run_img2img", inputs=("image",),
        model_tasks=("generate", "img2img"),
    ))
