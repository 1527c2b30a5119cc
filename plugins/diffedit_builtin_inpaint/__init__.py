"""Built-in plugin: inpainting (RePaint with any model, or mask-conditioned models) and outpainting."""

from __future__ import annotations

from dataclasses import dataclass

from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.params import ConditioningParams, param
from diffedit.tasks.registry import Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@dataclass
class InpaintParams(ConditioningParams):
    method: str = param("auto", label="Method", choices=("auto", "repaint", "conditioned"),
                        help="repaint: any model, the known area is put back every step; conditioned: a model "
                             "trained for inpainting; auto: conditioned when the model is an inpainting model")
    resample: int = param(1, label="Resample", help="RePaint: redo each step this many times so the new area "
                          "harmonises with the rest (ddpm or ddim sampler; costs that many times longer)",
                          minimum=1, maximum=20)
    context: int = param(32, label="Context", help="pixels of surroundings the model sees around the mask",
                         minimum=0, maximum=1024)
    feather: float = param(4.0, label="Feather", help="soften the seam over this many pixels inside the mask",
                           minimum=0.0, maximum=256.0)


@dataclass
class OutpaintParams(InpaintParams):
    left: int = param(0, label="Left", help="pixels to add on the left", minimum=0, maximum=4096)
    right: int = param(0, label="Right", help="pixels to add on the right", minimum=0, maximum=4096)
    top: int = param(0, label="Top", help="pixels to add at the top", minimum=0, maximum=4096)
    bottom: int = param(0, label="Bottom", help="pixels to add at the bottom", minimum=0, maximum=4096)


@hookimpl
def diffedit_register_tasks(registry: Registry) -> None:
    registry.add_task(TaskSpec(
        name="inpaint", label="Inpaint", description="Repaint the masked area to fit its surroundings",
        params=InpaintParams, runner="diffedit_builtin_inpaint.run:run_inpaint", inputs=("image", "mask"),
        model_tasks=("inpaint", "generate"),
    ))
    registry.add_task(TaskSpec(
        name="outpaint", label="Outpaint", description="Extend the canvas on chosen sides and fill the new area",
        params=OutpaintParams, runner="diffedit_builtin_inpaint.run:run_outpaint", inputs=("image",),
        model_tasks=("inpaint", "generate"),
    ))
