"""The Qt user interface: the only package that imports PySide6, so the core stays usable headless."""
