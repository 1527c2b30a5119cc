"""Diffusion building blocks: samplers (named diffusers schedulers) and the one denoise loop."""
