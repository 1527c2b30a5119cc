"""Built-in plugin: diffusers Stable Diffusion pipeline folders as models for the existing tasks.

txt2img and img2img folders serve generate/img2img/inpaint (RePaint), inpainting folders the
conditioned inpaint task, the x4 upscaler folder super-resolve. Only the folder's components are
used; DiffEdit's own loop samples (the pipeline's `__call__` never runs). Registration stays light:
the loader module (torch, diffusers, transformers) is imported only when a model loads.
"""

from __future__ import annotations

from diffedit.hookspecs import hookimpl
from diffedit.tasks.registry import ModelLoaderInfo, Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@hookimpl
def diffedit_register_model_loaders(registry: Registry) -> None:
    registry.add_model_loader(ModelLoaderInfo(
        name="stable-diffusion",
        description="diffusers Stable Diffusion folder (model_index.json): txt2img, img2img, inpainting, x4 upscaler",
        detect="diffedit_builtin_stablediffusion.layout:is_stable_diffusion",
        load="diffedit_builtin_stablediffusion.loader:load_stable_diffusion"))
