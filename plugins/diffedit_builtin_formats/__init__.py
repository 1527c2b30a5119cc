"""Built-in plugin: the file formats DiffEdit opens and saves (OpenRaster and flat images)."""

from __future__ import annotations

from diffedit.hookspecs import hookimpl
from diffedit.tasks.registry import FileFormatInfo, Registry

DIFFEDIT_PLUGIN_API = ">=1,<2"
_READ = "diffedit_builtin_formats.readers:open_as_document"
_SAVE = "diffedit_builtin_formats.readers:save_ora"
_EXPORT = "diffedit_builtin_formats.readers:export_flat"


@hookimpl
def diffedit_register_file_formats(registry: Registry) -> None:
    registry.add_file_format(FileFormatInfo(name="openraster", extensions=(".ora",), reader=_READ, writer=_SAVE))
    registry.add_file_format(FileFormatInfo(name="png", extensions=(".png",), reader=_READ, writer=_EXPORT))
    registry.add_file_format(FileFormatInfo(name="jpeg", extensions=(".jpg", ".jpeg"), reader=_READ, writer=_EXPORT))
    registry.add_file_format(FileFormatInfo(name="webp", extensions=(".webp",), reader=_READ, writer=_EXPORT))
    registry.add_file_format(FileFormatInfo(name="tiff", extensions=(".tif", ".tiff"), reader=_READ))
    registry.add_file_format(FileFormatInfo(name="bmp", extensions=(".bmp",), reader=_READ))
