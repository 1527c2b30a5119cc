"""Where Stable Diffusion's UNet inputs differ from what DiffEdit's tasks feed, adapt the model, not the
tasks: the tasks stay generic and a DiffEdit-trained model and an SD folder run the same code.

- Inpainting: the tasks concatenate [latents, masked-image latents, mask]; SD's 9-channel UNet was
  trained on [latents, mask, masked-image latents]. `StableDiffusionUNet` reorders the channels.
- x4 upscaler: the condition is the low-resolution image itself (pixels, at latent resolution) noised
  to a noise level that is also the UNet's class label. `LowResCondition` makes that condition from
  the upsampled pixels the super-resolve task has; `StableDiffusionUNet` adds the class label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from diffedit.diffusion.engine import TaskError


class StableDiffusionUNet(torch.nn.Module):
    """A diffusers UNet2DConditionModel seen through DiffEdit's channel order (and noise-level label).

    `order[i]` is the index, in DiffEdit's input, of the channel the SD UNet takes at position i.
    `.config` is the wrapped UNet's, so code that reads channel counts and levels works unchanged.
    """

    def __init__(self, unet: Any, order: Sequence[int] | None = None, class_label: int | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.order = list(order) if order is not None else None
        self.class_label = class_label

    @property
    def config(self) -> Any:
        return self.unet.config

    def forward(self, sample: torch.Tensor, timestep: Any, **kwargs: Any) -> Any:
        if self.order is not None:
            if sample.shape[1] != len(self.order):  # e.g. plain RePaint, which sends the latents alone
                raise TaskError(f"this Stable Diffusion inpainting UNet takes {len(self.order)} input channels "
                                f"(latents, mask, masked image), got {sample.shape[1]}: use method 'conditioned'")
            sample = sample[:, self.order]
        if self.class_label is not None and "class_labels" not in kwargs:
            kwargs["class_labels"] = torch.full((sample.shape[0],), self.class_label, dtype=torch.long,
                                                device=sample.device)
        return self.unet(sample, timestep, **kwargs)


def inpaint_order(latent_channels: int) -> list[int]:
    """DiffEdit [latents c, masked latents c, mask 1] -> SD [latents c, mask 1, masked latents c]."""
    c = latent_channels
    return [*range(c), 2 * c, *range(c, 2 * c)]


class LowResCondition:
    """The x4 upscaler's concatenated condition, from the upsampled image the super-resolve task has.

    The upsampled pixels are averaged back down to latent resolution (the low-resolution input, up to
    the bicubic round trip) and noised to `noise_level` on the low-res schedule, as the pipeline does;
    the noise comes from the run's generator, so a seed gives the same result.
    """

    def __init__(self, low_res_scheduler_config: dict[str, Any], noise_level: int, factor: int) -> None:
        import diffusers

        schedule = diffusers.DDPMScheduler.from_config(low_res_scheduler_config)
        alpha_bar = float(schedule.alphas_cumprod[noise_level])
        self.signal, self.noise = alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5
        self.noise_level = noise_level
        self.factor = factor

    def __call__(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        low = torch.nn.functional.avg_pool2d(pixels, self.factor) if self.factor > 1 else pixels
        noise = torch.randn(low.shape, generator=generator, device=generator.device, dtype=low.dtype)
        return self.signal * low + self.noise * noise.to(low.device)
