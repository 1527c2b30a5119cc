"""Built-in plugin: restoration (denoise, JPEG artifacts), Palette-style, conditioned on the degraded image."""

from __future__ import annotations

from dataclasses import dataclass

from diffedit_builtin_superres import ImageConditionedParams

from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.params import param
from diffedit.tasks.registry import Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@dataclass
class RestoreParams(ImageConditionedParams):
    degradation: str = param("blind", label="Degradation", choices=("blind", "noise", "jpeg"),
                             help="what to remove; blind handles noise and JPEG artifacts alike (models "
                                  "conditioned on the degradation use it, others ignore it)")


@hookimpl
def diffedit_register_tasks(registry: Registry) -> None:
    registry.add_task(TaskSpec(
        name="restore", label="Restore", description="Remove noise and JPEG artifacts",
        params=RestoreParams, runner="diffedit_builtin_restore.run:run_restore", inputs=("image",),
        model_tasks=("restore",),
    ))
