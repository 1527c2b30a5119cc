"""Image-generation metrics: features -> statistics -> distance (FID, KID, IS), plus PSNR/SSIM/LPIPS.

Submodules import torch lazily where they can; import what you need from them directly.
"""
