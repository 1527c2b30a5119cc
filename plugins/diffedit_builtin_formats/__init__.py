"""Built-in plugin: the file formats DiffEdit opens and saves (OpenRaster and flat images)."""

from __future__ import annotations

from diffedit.hookspecs import hookimpl
from diffedit.tasks.registry import FileFormatInfo, Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"


@hookimpl
def diffedit_register_file_formats(registry: Registry) -> None:
    registry.add_file_format(FileFormatInfo(
        name="openraster", extensions=(".ora",),
        reader="diffedit_builtin_formats.readers:open_as_document", writer="diffedit_builtin_formats.readers:save_ora"))
    registry.add_file_format(FileFormatInfo(
        name="png", extensions=(".png",),
        reader="diffedit_builtin_formats.readers:open_as_document", writer="diffedit_builtin_formats.readers:export_flat"))
    registry.add_file_format(FileFormatInfo(
        name="jpeg", extensions=(".jpg", ".jpeg"),
        reader="diffedit_builtin_formats.readers:open_as_document", writer="diffedit_builtin_formats.readers:export_flat"))
    registry.add_file_format(FileFormatInfo(
        name="webp", extensions=(".webp",),
        reader="diffedit_builtin_formats.readers:open_as_document", writer="diffedit_builtin_formats.readers:export_flat"))
    registry.add_file_format(FileFormatInfo(
        name="tiff", extensions=(".tif", ".tiff"), reader="diffedit_builtin_formats.readers:open_as_document"))
    registry.add_file_format(FileFormatInfo(
        name="bmp", extensions=(".bmp",), reader="diffedit_builtin_formats.readers:open_as_document"))
