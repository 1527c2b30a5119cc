"""Atomic saves (the old file survives a failed write) and autosave to recovery files."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from diffedit.document import Document, GenerationRecord, MaskLayer
from diffedit.document import atomic as atomic_module
from diffedit.document import ora as ora_module
from diffedit.document.atomic import atomic_write, atomic_write_bytes
from diffedit.document.autosave import Autosaver, find_recovery_files, recovery_dir
from diffedit.document.io import export_image, save_document
from diffedit.document.ora import load_ora


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _document() -> Document:
    doc = Document(24, 16, name="work")
    layer = doc.add_raster(np.full((16, 24, 4), (10, 20, 30, 255), np.uint8), name="base")
    layer.record = GenerationRecord(task="txt2img", seed=3)
    doc.add_layer(MaskLayer.empty(24, 16, "Inpaint mask", role="inpaint"))
    doc.set_active(layer)
    return doc


def _paint(doc: Document, value: int) -> None:
    doc.replace_pixels(doc.layer_named("base"), np.full((4, 4, 4), (value, 0, 0, 255), np.uint8), "paint", at=(2, 2))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- atomic writes ---------------------------------------------------------------------------------
def test_writer_failing_midway_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "doc.ora"
    target.write_bytes(b"the old contents")

    def half_then_fail(f) -> None:
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"the old contents"
    assert _files(tmp_path) == ["doc.ora"]


def test_interrupt_while_writing_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.png"

    def interrupted(f) -> None:
        f.write(b"abc")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert _files(tmp_path) == []


def test_save_document_failing_inside_the_writer_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _document()
    path = save_document(doc, tmp_path / "doc.ora")
    old = path.read_bytes()
    _paint(doc, 200)
    assert doc.modified

    def failing_fsync(fd: int) -> None:
        raise OSError("I/O error while flushing")

    monkeypatch.setattr(atomic_module.os, "fsync", failing_fsync)  # the data is written, then this fails
    with pytest.raises(OSError, match="I/O error"):
        save_document(doc, path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert _files(tmp_path) == ["doc.ora"]
    assert doc.modified  # not marked clean: the save did not happen
    reloaded = load_ora(path).document
    assert tuple(reloaded.composite()[3, 3]) == (10, 20, 30, 255)


def test_save_failing_while_building_the_archive_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _document()
    path = save_document(doc, tmp_path / "doc.ora")
    old = path.read_bytes()
    monkeypatch.setattr(ora_module, "encode_image", lambda *a, **k: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(MemoryError):
        save_document(doc, path)
    assert path.read_bytes() == old
    assert _files(tmp_path) == ["doc.ora"]


def test_rename_failing_removes_the_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def failing_replace(src: str, dst: object) -> None:
        raise PermissionError("locked by another program")

    monkeypatch.setattr(atomic_module.os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert _files(tmp_path) == ["out.png"]


def test_export_failing_midway_keeps_the_old_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _document()
    out = export_image(doc, tmp_path / "flat.png")
    old = out.read_bytes()
    _paint(doc, 250)

    real_fdopen = os.fdopen

    class Breaking:
        def __init__(self, f) -> None:
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            self.f.write(data[: len(data) // 2])
            raise OSError("no space left on device")

    monkeypatch.setattr(atomic_module.os, "fdopen", lambda fd, mode: Breaking(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="no space"):
        export_image(doc, out)
    assert out.read_bytes() == old
    assert _files(tmp_path) == ["flat.png"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_files_get_normal_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        new = atomic_write_bytes(tmp_path / "new.ora", b"x")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644  # not mkstemp's private 0600
        existing = tmp_path / "shared.ora"
        existing.write_bytes(b"old")
        existing.chmod(0o640)
        atomic_write_bytes(existing, b"new")
        assert stat.S_IMODE(existing.stat().st_mode) == 0o640  # replacing keeps the permissions
        assert existing.read_bytes() == b"new"
    finally:
        os.umask(umask)


def test_atomic_write_creates_missing_folders(tmp_path: Path) -> None:
    target = atomic_write_bytes(tmp_path / "a" / "b" / "c.bin", b"data")
    assert target.read_bytes() == b"data"


# -- autosave --------------------------------------------------------------------------------------
def test_tick_writes_only_when_modified_and_the_interval_passed(tmp_path: Path) -> None:
    doc = _document()
    doc.history.mark_clean()
    clock = FakeClock()
    saver = Autosaver(doc, interval=60, directory=tmp_path, clock=clock)

    clock.advance(120)
    assert saver.tick() is None  # unmodified: nothing to recover
    assert _files(tmp_path) == []

    _paint(doc, 100)
    assert doc.modified
    clock.advance(1)  # the interval has passed since the start
    path = saver.tick()
    assert path == saver.path and path.exists()
    assert _files(tmp_path) == [f"{saver.key}.json", f"{saver.key}.ora"]

    _paint(doc, 150)
    clock.advance(59)
    assert saver.tick() is None  # changed, but the interval since the last write has not passed
    clock.advance(1)
    assert saver.tick() == path
    assert tuple(load_ora(path).document.composite()[3, 3]) == (150, 0, 0, 255)

    clock.advance(120)
    mtime = path.stat().st_mtime_ns
    assert saver.tick() is None  # nothing changed since the last write
    assert path.stat().st_mtime_ns == mtime

    _paint(doc, 160)  # after a quiet spell, the next tick saves at once
    assert saver.tick() == path


def test_tick_waits_for_the_first_interval(tmp_path: Path) -> None:
    doc = _document()  # modified from the start (it has unsaved steps)
    clock = FakeClock()
    saver = Autosaver(doc, interval=30, directory=tmp_path, clock=clock)
    clock.advance(29.9)
    assert saver.tick() is None
    clock.advance(0.1)
    assert saver.tick() is not None


def test_undo_then_a_new_edit_is_autosaved(tmp_path: Path) -> None:
    """Same number of steps as at the last autosave, but different pixels."""
    doc = _document()
    doc.history.mark_clean()
    clock = FakeClock()
    saver = Autosaver(doc, interval=10, directory=tmp_path, clock=clock)
    _paint(doc, 100)
    clock.advance(10)
    path = saver.tick()
    assert path is not None
    doc.history.undo()
    _paint(doc, 222)
    clock.advance(10)
    assert saver.tick() == path
    assert tuple(load_ora(path).document.composite()[3, 3]) == (222, 0, 0, 255)


def test_after_a_clean_save_nothing_is_written(tmp_path: Path) -> None:
    doc = _document()
    clock = FakeClock()
    saver = Autosaver(doc, interval=10, directory=tmp_path / "rec", clock=clock)
    save_document(doc, tmp_path / "saved.ora")
    saver.discard()
    clock.advance(100)
    assert saver.tick() is None
    assert not (tmp_path / "rec").exists() or _files(tmp_path / "rec") == []


def test_find_recovery_files_and_discard(tmp_path: Path) -> None:
    rec = tmp_path / "recovery"
    assert find_recovery_files(rec) == []  # no folder yet
    doc = _document()
    doc.path = str(tmp_path / "projects" / "work.ora")
    clock = FakeClock()
    saver = Autosaver(doc, interval=5, directory=rec, clock=clock)
    clock.advance(5)
    saver.tick()
    untitled = _document()
    other = Autosaver(untitled, interval=5, directory=rec, clock=clock)
    clock.advance(5)
    other.tick()

    found = find_recovery_files(rec)
    assert {f.path for f in found} == {saver.path, other.path}
    assert found[0].saved_at >= found[1].saved_at  # newest first
    mine = next(f for f in found if f.path == saver.path)
    assert mine.original_path == doc.path and mine.name == "work"
    assert next(f for f in found if f.path == other.path).original_path is None

    saver.discard()
    assert not saver.path.exists() and not saver.path.with_suffix(".json").exists()
    assert [f.path for f in find_recovery_files(rec)] == [other.path]
    other.discard()
    assert find_recovery_files(rec) == []
    saver.discard()  # twice is harmless


def test_recovery_file_without_its_json_is_still_found(tmp_path: Path) -> None:
    doc = _document()
    saver = Autosaver(doc, interval=0, directory=tmp_path, clock=FakeClock())
    saver.write_now()
    saver.path.with_suffix(".json").unlink()
    (found,) = find_recovery_files(tmp_path)
    assert found.path == saver.path and found.original_path is None and found.name == saver.key


def test_recovery_file_with_damaged_json_is_still_found(tmp_path: Path) -> None:
    doc = _document()
    saver = Autosaver(doc, interval=0, directory=tmp_path, clock=FakeClock())
    saver.write_now()
    saver.path.with_suffix(".json").write_text("{broken")
    assert [f.path for f in find_recovery_files(tmp_path)] == [saver.path]


def test_recovery_file_opens_as_the_same_document(tmp_path: Path) -> None:
    doc = _document()
    _paint(doc, 99)
    mask = doc.inpaint_mask
    doc.replace_pixels(mask, np.full((5, 6), 255, np.uint8), "mask", at=(1, 1))
    doc.set_selection(np.pad(np.full((4, 4), 255, np.uint8), ((0, 12), (0, 20))))
    doc.metadata["parameters"] = "p"
    saver = Autosaver(doc, interval=0, directory=tmp_path, clock=FakeClock())
    path = saver.tick()
    assert path is not None
    (found,) = find_recovery_files(tmp_path)
    back = load_ora(found.path).document
    assert [type(la) for la in back.layers] == [type(la) for la in doc.layers]
    for a, b in zip(doc.layers, back.layers, strict=True):
        assert (a.name, a.offset, a.opacity, a.visible, a.record) == (b.name, b.offset, b.opacity, b.visible, b.record)
        np.testing.assert_array_equal(a.surface.to_array(), b.surface.to_array())
    np.testing.assert_array_equal(back.composite(), doc.composite())
    np.testing.assert_array_equal(back.selection_array(), doc.selection_array())
    assert back.active.name == doc.active.name and back.metadata == doc.metadata
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["name"] == "work" and meta["original_path"] is None


def test_recovery_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIFFEDIT_RECOVERY_DIR", str(tmp_path / "r"))
    assert recovery_dir() == tmp_path / "r"
    saver = Autosaver(_document(), interval=0, clock=FakeClock())
    assert saver.directory == tmp_path / "r"
    saver.write_now()
    assert [f.path for f in find_recovery_files()] == [saver.path]
    monkeypatch.delenv("DIFFEDIT_RECOVERY_DIR")
    assert recovery_dir().name == "recovery"


def test_autosave_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _document()
    clock = FakeClock()
    saver = Autosaver(doc, interval=1, directory=tmp_path, clock=clock)
    clock.advance(1)
    first = saver.tick()
    assert first is not None
    old = first.read_bytes()
    _paint(doc, 7)
    clock.advance(1)

    def failing_fsync(fd: int) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(atomic_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        saver.tick()
    monkeypatch.undo()
    assert first.read_bytes() == old
    assert _files(tmp_path) == [f"{saver.key}.json", f"{saver.key}.ora"]
    clock.advance(1)
    assert saver.tick() == first  # still stale, so the next tick tries again
    assert tuple(load_ora(first).document.composite()[3, 3]) == (7, 0, 0, 255)
