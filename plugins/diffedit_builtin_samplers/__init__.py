"""Built-in plugin: the samplers DiffEdit ships, over diffusers schedulers.

Registered through the `diffedit.plugins` entry point like any third-party plugin.
"""

from __future__ import annotations

from diffedit.hookspecs import hookimpl
from diffedit.tasks.registry import Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@hookimpl
def diffedit_register_samplers(registry: Registry) -> None:
    from diffedit.diffusion.samplers import BUILTIN_SAMPLERS  # plain data: no torch import

    for info in BUILTIN_SAMPLERS:
        registry.add_sampler(info)
