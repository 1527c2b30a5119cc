"""Built-in plugin: generation (unconditional, class- and text-conditioned, pixel or latent)."""

from __future__ import annotations

from dataclasses import dataclass

from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.params import ConditioningParams, param
from diffedit.tasks.registry import Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@dataclass
class GenerateParams(ConditioningParams):
    width: int = param(0, label="Width", help="image width in pixels (0: the model's size)", minimum=0,
                       maximum=4096)
    height: int = param(0, label="Height", help="image height in pixels (0: the model's size)", minimum=0,
                        maximum=4096)


@hookimpl
def diffedit_register_tasks(registry: Registry) -> None:
    registry.add_task(TaskSpec(
        name="generate", label="Generate", description="Draw a new image from noise (by class or prompt)",
        params=GenerateParams, runner="diffedit_builtin_generate.run:run_generate", inputs=(),
        model_tasks=("generate",),
    ))
