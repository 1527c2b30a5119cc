"""OpenRaster (.ora) documents: the layered format GIMP, Krita and MyPaint share.

Raster layers are written as the spec describes (stack.xml, one PNG per layer, mergedimage.png and a
thumbnail), so other editors read them. Our own data (mask layers, generation records, exact layer
geometry, the selection) travels in `diffedit/document.json` and extra PNGs that other readers
ignore. Reading checks the archive against path traversal and oversized members before decoding.
"""

from __future__ import annotations

import io
import json
import math
import os
import posixpath
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from diffedit import __version__
from diffedit.document.atomic import atomic_write
from diffedit.document.blend import BlendMode
from diffedit.document.document import Document
from diffedit.document.geometry import Rect
from diffedit.document.imagefiles import (
    DEFAULT_MAX_PIXELS,
    ImageFileError,
    ImageTooLargeError,
    check_pixel_limit,
    encode_image,
    normalize,
    open_pil,
)
from diffedit.document.layers import Layer, MaskLayer, RasterLayer
from diffedit.document.records import GenerationRecord
from diffedit.document.tiles import TiledSurface

MIMETYPE = b"image/openraster"
SIDECAR = "diffedit/document.json"
SIDECAR_VERSION = 1
MAX_MEMBERS = 10_000
MAX_MEMBER_BYTES = 2 * 1024**3
MAX_TOTAL_BYTES = 8 * 1024**3
# Uncompressed / compressed, beyond this a member over RATIO_CHECK_BYTES is treated as a zip bomb.
# DEFLATE cannot exceed about 1032:1, so the limit must lie well below that to ever fire; layer PNGs
# are compressed already and barely shrink again, so real files stay near 1:1.
MAX_RATIO = 100
RATIO_CHECK_BYTES = 50 * 1024**2
THUMBNAIL_SIZE = 256


class OraError(ImageFileError):
    """The .ora file is damaged, unsafe or not OpenRaster; the document is left unchanged."""


@dataclass
class OraLoad:
    document: Document
    notes: list[str]


# -- writing ---------------------------------------------------------------------------------------
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    """Text XML 1.0 can hold: ElementTree writes control characters as they are, which no parser reads."""
    return _XML_INVALID.sub("\ufffd", text)


def _layer_png(layer: Layer) -> tuple[bytes, Rect]:
    """PNG of the layer cropped to its content, and where that crop lies in document coordinates."""
    box = layer.surface.content_bounds()
    if box.is_empty():
        box = Rect(0, 0, 1, 1)
    pixels = layer.surface.read(box)
    if isinstance(layer, MaskLayer):
        img = Image.fromarray(pixels[..., 0], "L")
        buf = io.BytesIO()
        img.save(buf, "PNG")
        data = buf.getvalue()
    else:
        data = encode_image(pixels, "PNG")
    return data, box.translated(*layer.offset)


def ora_bytes(doc: Document) -> bytes:
    """The whole .ora archive for a document."""
    buf = io.BytesIO()
    image_el = ET.Element("image", {"version": "0.0.5", "w": str(doc.width), "h": str(doc.height)})
    stack_el = ET.SubElement(image_el, "stack")
    sidecar_layers: list[dict[str, object]] = []
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
        raster_elements: list[ET.Element] = []
        for i, layer in enumerate(doc.layers):
            data, box = _layer_png(layer)
            entry: dict[str, object] = {
                "name": layer.name,
                "x": layer.offset[0],
                "y": layer.offset[1],
                "w": layer.width,
                "h": layer.height,
                "record": layer.record.to_json() if layer.record else None,
            }
            if isinstance(layer, MaskLayer):
                src = f"diffedit/masks/mask{i}.png"
                entry.update(kind="mask", src=src, role=layer.role, color=list(layer.color), visible=layer.visible,
                             opacity=layer.opacity, locked=layer.locked, crop=[box.x, box.y])
            else:
                src = f"data/layer{i}.png"
                entry.update(kind="raster", src=src)
                attrs = {
                    "name": _xml_text(layer.name),  # the exact name travels in the sidecar
                    "src": src,
                    "x": str(box.x),
                    "y": str(box.y),
                    "opacity": repr(float(layer.opacity)),  # shortest text that reads back exactly
                    "visibility": "visible" if layer.visible else "hidden",
                    "composite-op": layer.blend_mode.ora_name,  # type: ignore[union-attr]
                }
                if layer.locked:
                    attrs["edit-locked"] = "true"
                if layer is doc.active:
                    attrs["selected"] = "true"
                raster_elements.append(ET.Element("layer", attrs))
            z.writestr(src, data, compress_type=zipfile.ZIP_STORED)  # PNG is compressed already
            sidecar_layers.append(entry)
        for el in reversed(raster_elements):  # stack.xml lists the topmost layer first
            stack_el.append(el)
        z.writestr("stack.xml", ET.tostring(image_el, encoding="utf-8", xml_declaration=True), zipfile.ZIP_DEFLATED)
        merged = doc.composite()
        z.writestr("mergedimage.png", encode_image(merged, "PNG"), compress_type=zipfile.ZIP_STORED)
        thumb = Image.fromarray(merged, "RGBA")
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        z.writestr("Thumbnails/thumbnail.png", encode_image(np.asarray(thumb), "PNG"), compress_type=zipfile.ZIP_STORED)
        sidecar: dict[str, object] = {
            "format": "diffedit", "version": SIDECAR_VERSION, "app_version": __version__,
            "layers": sidecar_layers,
            "active": doc.index_of(doc.active) if doc.active is not None else None,
            "metadata": doc.metadata,
        }
        if doc.has_selection:
            sel = Image.fromarray(doc.selection_array(), "L")
            sbuf = io.BytesIO()
            sel.save(sbuf, "PNG")
            z.writestr("diffedit/selection.png", sbuf.getvalue(), compress_type=zipfile.ZIP_STORED)
            sidecar["selection"] = "diffedit/selection.png"
        z.writestr(SIDECAR, json.dumps(sidecar, indent=1, sort_keys=True), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def save_ora(doc: Document, path: str | os.PathLike[str]) -> Path:
    """Save atomically: the old file stays intact until the new one is complete."""
    data = ora_bytes(doc)
    return atomic_write(path, lambda f: f.write(data))


# -- reading ---------------------------------------------------------------------------------------
def _check_member_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not name:
        raise OraError(f"{what}: archive member name {name!r} is not a valid file name; refusing the file")
    norm = posixpath.normpath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or norm.startswith("..") or ":" in name.split("/")[0] or "\x00" in name:
        raise OraError(
            f"{what}: archive member '{name}' points outside the archive (path traversal); refusing the file"
        )


class _Archive:
    """A checked zip archive: safe names, bounded sizes, members read by normalised path."""

    def __init__(self, z: zipfile.ZipFile, what: str, max_pixels: int) -> None:
        self.z, self.what, self.max_pixels = z, what, max_pixels
        infos = z.infolist()
        if len(infos) > MAX_MEMBERS:
            raise OraError(f"{what} has {len(infos)} members, more than the {MAX_MEMBERS} allowed")
        total = 0
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            _check_member_name(info.filename, what)
            if info.file_size > MAX_MEMBER_BYTES or (
                info.file_size > RATIO_CHECK_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1)
            ):
                raise OraError(
                    f"{what}: member '{info.filename}' is oversized ({info.file_size} bytes unpacked from "
                    f"{info.compress_size}; a possible zip bomb); refusing the file"
                )
            total += info.file_size
            self.members[posixpath.normpath(info.filename)] = info
        if total > MAX_TOTAL_BYTES:
            raise OraError(f"{what} would unpack to {total} bytes, more than allowed")

    def read(self, name: str) -> bytes:
        _check_member_name(name, self.what)
        info = self.members.get(posixpath.normpath(name))
        if info is None:
            raise OraError(f"{self.what} refers to '{name}', which is missing from the archive")
        return self.z.read(info)

    def has(self, name: str) -> bool:
        return posixpath.normpath(name) in self.members

    def image(self, name: str, mode: str) -> np.ndarray:
        """A member PNG as RGBA (h, w, 4) or, for mode "L", greyscale (h, w) uint8."""
        what = f"{self.what}: '{name}'"
        try:
            img = open_pil(io.BytesIO(self.read(name)), self.max_pixels, what, formats=("PNG",))
        except (ImageTooLargeError, OraError):
            raise
        except ImageFileError:
            raise OraError(f"{what} is not a PNG image; the file is damaged or was not written as OpenRaster") from None
        try:
            with img:
                img.load()
                if mode == "L" and img.mode in ("L", "1", "P"):
                    return np.array(img.convert("L"), dtype=np.uint8)
                # normalize() handles 16-bit, palette and greyscale layers that convert() would clip
                rgba = normalize(img, [])
        except ImageFileError:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error) as exc:
            raise OraError(f"{what} is damaged or truncated and could not be read ({exc})") from None
        return np.ascontiguousarray(rgba[..., 0]) if mode == "L" else rgba


def _float(el: ET.Element, key: str, default: float) -> float:
    try:
        value = float(el.get(key, default))
    except ValueError:
        return default
    return value if math.isfinite(value) else default  # "nan" would poison every composite


def _int(el: ET.Element, key: str) -> int:
    try:
        return int(float(el.get(key, 0)))
    except (ValueError, OverflowError):  # OverflowError: "inf"
        return 0


@dataclass
class _StackLayer:
    el: ET.Element
    x: int
    y: int
    opacity: float
    visible: bool


def _walk(
    stack: ET.Element, x: int, y: int, opacity: float, visible: bool, out: list[_StackLayer], notes: list[str]
) -> None:
    """Collect layers top to bottom, folding nested stacks (groups) into their parents."""
    for child in stack:
        cx, cy = x + _int(child, "x"), y + _int(child, "y")
        op = opacity * min(max(_float(child, "opacity", 1.0), 0.0), 1.0)
        vis = visible and child.get("visibility", "visible") != "hidden"
        if child.tag == "stack":
            if "layer groups were merged into the top level" not in notes:
                notes.append("layer groups were merged into the top level")
            _walk(child, cx, cy, op, vis, out, notes)
        elif child.tag == "layer":
            out.append(_StackLayer(child, cx, cy, op, vis))
        elif child.tag == "text":
            notes.append("skipped a text element that has no pixels")


def _surface_for(
    pixels: np.ndarray, x: int, y: int, doc_w: int, doc_h: int, exact: dict | None, archive: _Archive
) -> tuple[TiledSurface, tuple[int, int]]:
    """Place PNG pixels on a layer surface: the stored geometry for our files, else document-sized."""
    h, w = pixels.shape[:2]
    if exact is not None:
        ox, oy, lw, lh = (int(exact[k]) for k in ("x", "y", "w", "h"))
        check_pixel_limit(lw, lh, archive.max_pixels, f"{archive.what}: layer '{exact.get('name', '')}'")
    elif x >= 0 and y >= 0 and x + w <= doc_w and y + h <= doc_h:
        ox, oy, lw, lh = 0, 0, doc_w, doc_h
    else:
        ox, oy, lw, lh = x, y, w, h
    surface = TiledSurface(lw, lh, pixels.shape[2])
    surface.write(x - ox, y - oy, pixels)
    return surface, (ox, oy)


def _read(archive: _Archive, what: str) -> OraLoad:
    notes: list[str] = []
    if archive.has("mimetype") and archive.read("mimetype").strip() != MIMETYPE:
        raise OraError(f"{what} is not an OpenRaster file (its mimetype is not image/openraster)")
    try:
        root = ET.fromstring(archive.read("stack.xml"))
    except ET.ParseError as exc:
        raise OraError(f"{what} has a damaged stack.xml ({exc})") from None
    if root.tag != "image" or root.find("stack") is None:
        raise OraError(f"{what}: stack.xml has no <image><stack>; the file is not valid OpenRaster")
    width, height = _int(root, "w"), _int(root, "h")
    if width <= 0 or height <= 0:
        raise OraError(f"{what}: stack.xml gives an invalid image size {width}x{height}")
    check_pixel_limit(width, height, archive.max_pixels, what)
    sidecar: dict = {}
    if archive.has(SIDECAR):
        try:
            sidecar = json.loads(archive.read(SIDECAR))
        except ValueError as exc:
            raise OraError(f"{what}: {SIDECAR} is damaged ({exc})") from None
        if not isinstance(sidecar, dict) or not isinstance(sidecar.get("layers", []), list):
            raise OraError(f"{what}: {SIDECAR} is damaged (not a DiffEdit document description)")
        if sidecar.get("version", 0) > SIDECAR_VERSION:
            notes.append(f"made by a newer DiffEdit (data version {sidecar.get('version')}); some data may be ignored")
    by_src = {e.get("src"): e for e in sidecar.get("layers", []) if isinstance(e, dict)}

    stacked: list[_StackLayer] = []
    _walk(root.find("stack"), 0, 0, 1.0, True, stacked, notes)  # type: ignore[arg-type]
    doc = Document(width, height, name=Path(what.strip("'")).stem)
    raster: list[tuple[str, Layer]] = []  # (src, layer) bottom first; two entries may share one PNG
    active: Layer | None = None
    for item in reversed(stacked):  # bottom first
        el = item.el
        src = el.get("src", "")
        if not src.lower().endswith(".png"):
            raise OraError(f"{what}: layer '{el.get('name', '')}' has no PNG source ('{src}')")
        extra = by_src.get(src)
        surface, offset = _surface_for(archive.image(src, "RGBA"), item.x, item.y, width, height, extra, archive)
        name = str(extra["name"]) if extra and extra.get("name") else el.get("name")  # sidecar: exact name
        layer = RasterLayer(
            name=name or f"Layer {len(raster) + 1}",
            surface=surface,
            opacity=item.opacity,
            visible=item.visible,
            locked=el.get("edit-locked") == "true",
            offset=offset,
            blend_mode=BlendMode.from_ora(el.get("composite-op")),
        )
        op = el.get("composite-op")
        if op and BlendMode.from_ora(op) is BlendMode.NORMAL and op != "svg:src-over":
            notes.append(f"layer '{layer.name}' uses '{op}', which DiffEdit shows as normal")
        if extra and extra.get("record"):
            layer.record = GenerationRecord.from_json(extra["record"])
        if el.get("selected") == "true":
            active = layer
        raster.append((src, layer))
    layers: list[Layer] = [la for _, la in raster]
    if sidecar.get("layers"):
        layers = []
        for entry in sidecar["layers"]:
            src = entry.get("src")
            if entry.get("kind") == "mask":
                pixels = archive.image(src, "L")[..., None]
                cx, cy = entry.get("crop", [entry.get("x", 0), entry.get("y", 0)])
                surface, offset = _surface_for(pixels, int(cx), int(cy), width, height, entry, archive)
                layers.append(MaskLayer(
                    name=str(entry.get("name", "Mask")), surface=surface, offset=offset,
                    opacity=float(entry.get("opacity", 1.0)), visible=bool(entry.get("visible", True)),
                    locked=bool(entry.get("locked", False)), role=str(entry.get("role", "")),
                    color=tuple(entry.get("color", (255, 0, 64))),  # type: ignore[arg-type]
                    record=GenerationRecord.from_json(entry["record"]) if entry.get("record") else None,
                ))
            else:
                match = next((i for i, (s, _) in enumerate(raster) if s == src), None)
                if match is not None:
                    layers.append(raster.pop(match)[1])
        layers.extend(la for _, la in raster)  # layers another editor added that our data does not know
        if isinstance(sidecar.get("active"), int) and 0 <= sidecar["active"] < len(layers):
            active = layers[sidecar["active"]]
        doc.metadata = dict(sidecar.get("metadata") or {})
        if sidecar.get("selection"):
            sel = archive.image(sidecar["selection"], "L")
            if sel.shape == (height, width):
                doc.selection.write(0, 0, sel)
    doc.layers[:] = layers
    doc._set_active_silently(active or (layers[-1] if layers else None))
    doc.history.clear()
    return OraLoad(doc, notes)


def load_ora(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> OraLoad:
    """Open an .ora file into a new document; any problem raises OraError and creates nothing."""
    what = f"'{path}'"
    try:
        with zipfile.ZipFile(path) as z:
            archive = _Archive(z, what, max_pixels)
            loaded = _read(archive, what)
    except FileNotFoundError:
        raise OraError(f"{what} does not exist") from None
    except zipfile.BadZipFile as exc:
        raise OraError(f"{what} is damaged or not an OpenRaster file ({exc})") from None
    except ImageFileError:
        raise
    except NotImplementedError as exc:  # zipfile: a compression method other than stored/deflated
        raise OraError(f"{what} uses an unsupported zip compression ({exc})") from None
    except RecursionError:
        raise OraError(f"{what}: stack.xml nests layer groups too deeply") from None
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required for extraction"
        raise OraError(f"{what} could not be read ({exc}); encrypted archives are not supported") from None
    except (
        zipfile.LargeZipFile, EOFError, OSError, KeyError, ValueError, TypeError, AttributeError, IndexError,
        OverflowError, struct.error, zlib.error,
    ) as exc:  # zlib.error: damaged deflate data; the others: damaged or odd stack.xml / sidecar values
        raise OraError(f"{what} is damaged and could not be read ({exc})") from None
    loaded.document.path = str(path)
    return loaded
