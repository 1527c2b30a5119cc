"""Training: data folders -> Trainer (yields progress) -> checkpoint folders. Qt-free; the GUI dialog
and the `diffedit train` command drive the same `Trainer`."""
