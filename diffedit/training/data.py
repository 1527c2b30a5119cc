"""Training data from a folder of images, checked completely before any training starts.

Layout (searched recursively; hidden files and folders are ignored):
- images: .png .jpg .jpeg .webp .bmp .tif .tiff;
- class labels (conditioning "class" for generate): the first-level sub-folder of an image, as
  torchvision's ImageFolder does; images directly in the root folder are skipped (and listed);
- captions (conditioning "text"): `name.txt` beside `name.png`; every image needs one;
- segmentation masks: `name.mask.png` beside `name.png` (white = the object). A mask beside its image
  survives moving sub-folders around, which a parallel `masks/` tree does not; files ending in
  `.mask.<ext>` are never taken as images.

Batches are a pure function of (seed, step, rank): which images, their crops, flips and degradations
come from a numpy generator seeded with those numbers, so a resumed run sees exactly the batches an
uninterrupted run would, without saving any loader state.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MASK_SUFFIX = ".mask"
MAX_PIXELS = 64_000_000  # refuse decompression bombs rather than run out of memory


class DataError(ValueError):
    """The training data cannot be used; the message says what to fix in the folder."""


@dataclass(frozen=True)
class Item:
    path: Path
    label: int = -1  # class index, -1 when unlabelled
    caption: str | None = None
    mask: Path | None = None


@dataclass
class DataIndex:
    """Every usable image of a folder with its label, caption and mask; what was skipped and why."""

    folder: Path
    items: list[Item]
    class_names: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def captions(self) -> int:
        return sum(item.caption is not None for item in self.items)

    @property
    def masks(self) -> int:
        return sum(item.mask is not None for item in self.items)


@dataclass(frozen=True)
class DataSummary:
    """Counts for the training dialog (it shows these before the user starts a run)."""

    images: int
    classes: int
    captions: int
    masks: int
    skipped: int
    skipped_files: tuple[str, ...]
    class_names: tuple[str, ...]


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.stem.endswith(MASK_SUFFIX)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def check_readable(path: Path) -> str | None:
    """None when Pillow decodes the whole file, else the reason (truncated, not an image...)."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                return f"too large ({img.width}x{img.height})"
            img.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for broken files
        return f"unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    return None


def scan(folder: str | os.PathLike[str], *, labels: bool = False, captions: bool = False,
         masks: bool = False) -> DataIndex:
    """Index `folder`; unreadable files are skipped and listed, never fatal (see `validate`)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root) and _is_image(p))
    class_names = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    items: list[Item] = []
    skipped: list[tuple[Path, str]] = []
    for path in files:
        reason = check_readable(path)
        rel = path.relative_to(root).parts
        if reason is None and labels and len(rel) == 1:
            reason = "not in a class sub-folder"
        mask = None
        if reason is None and masks:
            mask = next((m for m in (path.with_name(path.stem + MASK_SUFFIX + ext) for ext in IMAGE_EXTENSIONS)
                         if m.is_file()), None)
            if mask is not None and (why := check_readable(mask)) is not None:
                reason = f"mask {mask.name} {why}"
        if reason is not None:
            skipped.append((path, reason))
            continue
        caption = None
        txt = path.with_suffix(".txt")
        if captions and txt.is_file():
            caption = txt.read_text(encoding="utf-8", errors="replace").strip()
        items.append(Item(path, class_names.index(rel[0]) if labels else -1, caption, mask))
    if labels:  # a class whose every image was skipped would be an embedding that never trains
        used = sorted({item.label for item in items})
        names = [class_names[i] for i in used]
        remap = {old: new for new, old in enumerate(used)}
        items = [Item(i.path, remap[i.label], i.caption, i.mask) for i in items]
        class_names = names
    return DataIndex(root, items, class_names if labels else [], skipped)


def validate(index: DataIndex, *, batch: int, captions: bool = False, masks: bool = False,
             min_classes: int = 0) -> None:
    """Refuse data that cannot train, before any model is built (the dialog shows the message)."""
    n = len(index.items)
    if len(index.class_names) < min_classes:
        raise DataError(f"{index.folder}: class training needs images in at least {min_classes} sub-folder"
                        f"{'s' if min_classes > 1 else ''} (one per class); found {len(index.class_names)}")
    if n == 0:
        extra = f" ({len(index.skipped)} skipped: {index.skipped[0][0].name} {index.skipped[0][1]})" \
            if index.skipped else ""
        raise DataError(f"{index.folder}: no usable images{extra}; expected {', '.join(IMAGE_EXTENSIONS)}")
    if n < batch:
        raise DataError(f"{index.folder}: {n} usable images, fewer than the batch size {batch}; "
                        f"add images or lower the batch size")
    if captions:
        missing = [i.path for i in index.items if not i.caption]
        if missing:
            raise DataError(f"{index.folder}: {len(missing)} of {n} images have no caption (.txt beside the "
                            f"image), e.g. {missing[0].relative_to(index.folder)}; text training needs one for "
                            "every image")
    if masks:
        missing = [i.path for i in index.items if i.mask is None]
        if missing:
            raise DataError(f"{index.folder}: {len(missing)} of {n} images have no mask (name{MASK_SUFFIX}.png "
                            f"beside name.png), e.g. {missing[0].relative_to(index.folder)}")


def needs(task: str, conditioning: str) -> dict[str, bool]:
    """What a task/conditioning reads from the folder: labels, captions, masks."""
    return {"labels": conditioning == "class" and task == "generate", "captions": conditioning == "text",
            "masks": task == "segment"}


def summarize(folder: str | os.PathLike[str], task: str = "generate", conditioning: str = "none") -> DataSummary:
    """Counts for the dialog: images, classes, captions, masks, skipped (with reasons)."""
    index = scan(folder, **needs(task, conditioning))
    if not index.class_names:  # show the sub-folders the user could train classes on anyway
        index.class_names = sorted({i.path.relative_to(index.folder).parts[0] for i in index.items
                                    if len(i.path.relative_to(index.folder).parts) > 1})
    return DataSummary(len(index.items), len(index.class_names), index.captions, index.masks, len(index.skipped),
                       tuple(f"{p}: {why}" for p, why in index.skipped), tuple(index.class_names))


def split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices, the same for the same n and seed; validation needs 8+ images."""
    if fraction <= 0 or n < 8:
        return list(range(n)), []
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    k = max(1, round(n * fraction))
    return sorted(order[k:].tolist()), sorted(order[:k].tolist())


_CACHE: dict[tuple[Path, int, str], Image.Image] = {}
_CACHE_BUDGET = 256 * 2**20  # bytes of decoded pixels kept between steps
_cached_bytes = 0


def _decode(path: Path, mode: str) -> Image.Image:
    """The decoded image; small data sets stay decoded in memory (PNG decoding would dominate a step)."""
    global _cached_bytes
    key = (path, path.stat().st_mtime_ns, mode)  # an edited file is decoded again
    if key in _CACHE:
        return _CACHE[key]
    with Image.open(path) as img:
        if img.mode in ("RGBA", "LA", "P"):  # transparent areas become white, not black
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
        out = img.convert(mode)
    size = out.width * out.height * len(mode)
    if _cached_bytes + size <= _CACHE_BUDGET:
        _CACHE[key] = out
        _cached_bytes += size
    return out


def random_crop(img: Image.Image, size: int, rng: np.random.Generator, params: tuple[float, ...] | None = None
                ) -> tuple[Image.Image, tuple[float, ...]]:
    """Resize the short side to size x [1, 1.25], crop size x size at random, flip half the time.

    Returns the parameters so a mask gets exactly the same geometry."""
    if params is None:
        params = (rng.uniform(1.0, 1.25), rng.random(), rng.random(), float(rng.random() < 0.5))
    zoom, fx, fy, flip = params
    scale = size * zoom / min(img.size)
    w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
    img = img.resize((w, h), Image.Resampling.BICUBIC)
    x, y = int(fx * (w - size + 1)), int(fy * (h - size + 1))
    img = img.crop((x, y, x + size, y + size))
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img, params


PATCH_SCALE = (0.5, 1.0)  # patch crops: pixels taken at 1/2 to 1 times their size in the file


def random_patch(img: Image.Image, size: int, rng: np.random.Generator, params: tuple[float, ...] | None = None
                 ) -> tuple[Image.Image, tuple[float, ...]]:
    """A size x size patch at (nearly) the file's own scale, flipped and turned at random.

    Restoration models must see pixels as the user's photos have them: resizing a whole photo to 64 px
    (what `random_crop` does for generators) would teach them a world without fine detail. The scale
    varies from 1/2 to 1 (scale augmentation); images smaller than the patch are enlarged.
    """
    if params is None:
        params = (float(np.exp(rng.uniform(np.log(PATCH_SCALE[0]), np.log(PATCH_SCALE[1])))), rng.random(),
                  rng.random(), float(rng.integers(8)))
    scale, fx, fy, turn = params
    side = min(max(1, round(size / scale)), img.width, img.height)
    x, y = int(fx * (img.width - side + 1)), int(fy * (img.height - side + 1))
    img = img.crop((x, y, x + side, y + side))
    if side != size:
        img = img.resize((size, size), Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC)
    if int(turn) & 4:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if int(turn) & 3:
        img = img.transpose((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                             Image.Transpose.ROTATE_270)[int(turn) % 4 - 1])
    return img, params


@dataclass
class Example:
    """One augmented example: uint8 image (h, w, c), label, caption, uint8 mask (h, w) or None."""

    image: np.ndarray
    label: int
    caption: str
    mask: np.ndarray | None


def load_example(item: Item, size: int, channels: int, rng: np.random.Generator, augment: bool = True,
                 crop: str = "resize") -> Example:
    """`crop`: "resize" (the whole image brought to the size; generators) or "patch" (random_patch)."""
    img = _decode(item.path, "L" if channels == 1 else "RGB")
    cropper = random_patch if crop == "patch" else random_crop
    if augment:
        img, params = cropper(img, size, rng)
    else:  # validation: centre crop, no flip, the same every time
        params = (1.0, 0.5, 0.5, 0.0)
        img, _ = cropper(img, size, rng, params)
    mask = None
    if item.mask is not None:
        mask_img, _ = cropper(_decode(item.mask, "L"), size, rng, params)
        mask = np.where(np.asarray(mask_img) >= 128, 255, 0).astype(np.uint8)
    arr = np.asarray(img)
    return Example(arr[..., None] if arr.ndim == 2 else arr, item.label, item.caption or "", mask)


def batch_indices(n: int, batch: int, step: int, *, seed: int, rank: int = 0, world: int = 1) -> list[int]:
    """Epoch-wise shuffled indices (each image once per epoch), sharded over ranks, a pure function
    of (seed, step, rank) so resuming needs no loader state."""
    out = []
    for j in range(batch):
        k = (step * world + rank) * batch + j
        epoch, pos = divmod(k, n)
        out.append(int(_permutation(n, seed, epoch)[pos]))
    return out


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, 0xDA7A]).permutation(n)


def stack(examples: Sequence[Example]) -> np.ndarray:
    return np.stack([e.image for e in examples])
