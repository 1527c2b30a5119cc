"""Built-in plugin: the checkpoint formats DiffEdit reads (its own folders, legacy weight files)."""

from __future__ import annotations

from diffedit.hookspecs import hookimpl
from diffedit.tasks.registry import ModelLoaderInfo, Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@hookimpl
def diffedit_register_model_loaders(registry: Registry) -> None:
    registry.add_model_loader(ModelLoaderInfo(
        name="diffedit", description="DiffEdit checkpoint folder: diffusers subfolders + diffedit.json",
        detect="diffedit_builtin_models.loaders:is_diffedit_checkpoint",
        load="diffedit.diffusion.checkpoints:load_checkpoint"))
