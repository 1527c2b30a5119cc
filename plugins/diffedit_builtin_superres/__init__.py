"""Built-in plugin: super-resolution x2/x4 (SR3-style, conditioned on the upsampled image), in tiles."""

from __future__ import annotations

from dataclasses import dataclass

from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.params import SamplingParams, param
from diffedit.tasks.registry import Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@dataclass
class ImageConditionedParams(SamplingParams):
    """Shared by super-resolution and restoration."""

    start: str = param("auto", label="Start from", choices=("auto", "noise", "degraded"),
                       help="degraded: start from the input and correct it (faithful, fast); noise: sample "
                            "from scratch (more invented detail); auto: what the model was trained for")
    strength: float = param(0.5, label="Strength", help="with start=degraded: how much noise to add first "
                            "(low keeps the input, high adds detail)", minimum=0.0, maximum=1.0, widget="slider")
    tile: int = param(0, label="Tile size", help="process in tiles of this many output pixels (0: automatic)",
                      minimum=0, maximum=4096)
    overlap: int = param(16, label="Tile overlap", help="pixels tiles share, blended without seams", minimum=0,
                         maximum=512)
    ensemble: bool = param(False, label="Self-ensemble", help="also run the image flipped and turned (8 ways) and "
                           "average: a little more faithful, 8x slower")


@dataclass
class SuperResolveParams(ImageConditionedParams):
    scale: int = param(0, label="Scale", choices=(0, 2, 4), help="upscaling factor (0: the model's own)")
    prompt: str = param("", label="Prompt", help="what the image shows (text-conditioned upscalers)", widget="prompt")
    negative_prompt: str = param("", label="Negative prompt", help="what to avoid (text upscalers)", widget="prompt")
    guidance_scale: float = param(1.0, label="Guidance", help="classifier-free guidance scale (text upscalers)",
                                  minimum=0.0, maximum=30.0)


@hookimpl
def diffedit_register_tasks(registry: Registry) -> None:
    registry.add_task(TaskSpec(
        name="super-resolve", label="Super-resolve", description="Upscale the image x2 or x4 with added detail",
        params=SuperResolveParams, runner="diffedit_builtin_superres.run:run_super_resolve", inputs=("image",),
        model_tasks=("super-resolve",),
    ))
