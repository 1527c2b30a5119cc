"""Example DiffEdit plugin: registers the `sharpen` task (unsharp mask)."""

from __future__ import annotations

from dataclasses import dataclass

from diffedit.hookspecs import hookimpl
from diffedit.tasks.base import TaskSpec
from diffedit.tasks.params import param
from diffedit.tasks.registry import Registry

__version__ = "0.1.0"
DIFFEDIT_PLUGIN_API = ">=1,<2"


@dataclass
class SharpenParams:
    radius: float = param(2.0, label="Radius", help="blur radius in pixels", minimum=0.3, maximum=50.0)
    amount: float = param(1.0, label="Amount", help="how much of the detail to add back", minimum=0.0, maximum=5.0)
    threshold: int = param(0, label="Threshold", help="leave differences below this level alone",
                           minimum=0, maximum=255)


@hookimpl
def diffedit_register_tasks(registry: Registry) -> None:
    registry.add_task(TaskSpec(
        name="sharpen",
        label="Sharpen",
        description="Unsharp mask: crisper edges, limited to the mask when one is painted",
        params=SharpenParams,
        runner="diffedit_sharpen.run:run_sharpen",
        inputs=("image",),
        needs_model=False,
    ))
