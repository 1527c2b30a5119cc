"""DiffEdit: a plugin-based image editor for diffusion models.

Importing this package must stay cheap: no torch, diffusers or Qt here.
"""

__version__ = "0.1.0"
