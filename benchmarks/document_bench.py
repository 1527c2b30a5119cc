"""Document-model benchmarks on a 4096x4096 document with 10 layers (run by hand).

    python benchmarks/document_bench.py [--quick]

Prints the figures that go into benchmarks/RESULTS.md. Targets (issue 2): one dab plus its
dirty-rectangle composite under 1 ms median; a full composite under 0.5 s; 20 empty layers under
50 MB; the history of one 300 px stroke in proportion to its area (a few MB).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import tracemalloc

import numpy as np

from diffedit.document import BlendMode, Document
from diffedit.document.brush import BrushMode, BrushSettings, Stroke, paint_stroke

SIZE = 4096


def _photo_like(rng: np.random.Generator, size: int) -> np.ndarray:
    """An opaque background with smooth gradients and noise, like a photo."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 4), np.uint8)
    img[..., 0] = np.clip(255 * x, 0, 255)
    img[..., 1] = np.clip(255 * y, 0, 255)
    img[..., 2] = rng.integers(0, 256, (size, size), dtype=np.uint8)
    img[..., 3] = 255
    return img


def build_document(rng: np.random.Generator) -> Document:
    """Background photo plus nine painted layers: strokes of various widths, modes and opacities."""
    doc = Document(SIZE, SIZE, history_limit=2 * 1024**3)
    doc.add_raster(_photo_like(rng, SIZE), "background")
    modes = [BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN, BlendMode.OVERLAY, BlendMode.NORMAL,
             BlendMode.DARKEN, BlendMode.ADD, BlendMode.DIFFERENCE, BlendMode.NORMAL]
    for i, mode in enumerate(modes):
        layer = doc.add_layer(name=f"paint {i + 1}")
        for _ in range(6):
            pts = [(float(x), float(y)) for x, y in rng.integers(0, SIZE, (4, 2))]
            color = (*(int(c) for c in rng.integers(0, 256, 3)), 255)
            paint_stroke(doc, layer, pts, BrushSettings(size=float(rng.integers(40, 200)), hardness=0.6,
                                                        spacing=0.25), color=color)
        doc.set_property(layer, "blend_mode", mode)
        doc.set_property(layer, "opacity", float(rng.uniform(0.5, 1.0)))
    doc.history.clear()
    return doc


def bench_dab(doc: Document, n: int) -> list[float]:
    layer = doc.layers[5]
    doc.set_active(layer)
    stroke = Stroke(doc, layer, BrushSettings(size=30, hardness=0.8), color=(255, 0, 0, 255))
    times = []
    for i in range(n):
        x, y = 1000 + i * 4.0, 1500 + (i % 50) * 3.0
        t = time.perf_counter()
        changed = stroke.add_point(x, y)
        doc.composite(changed)
        times.append(time.perf_counter() - t)
    stroke.end()
    return times


def bench_full(doc: Document, repeats: int) -> tuple[list[float], list[float]]:
    """Cold: the projection cache emptied first. After an edit: one dab on the active layer, then
    the whole image again (only the touched tiles are recomposited)."""
    cold, warm = [], []
    for i in range(repeats):
        doc.projection.clear()
        t = time.perf_counter()
        doc.composite()
        cold.append(time.perf_counter() - t)
        paint_stroke(doc, doc.layers[5], [(500.0 + 300 * i, 700.0)], BrushSettings(size=30))
        t = time.perf_counter()
        doc.composite()
        warm.append(time.perf_counter() - t)
    return cold, warm


def bench_worst(rng: np.random.Generator) -> float:
    """Ten layers that each cover every pixel with varied alpha: nothing can be skipped."""
    doc = Document(SIZE, SIZE)
    doc.add_raster(_photo_like(rng, SIZE), "background")
    for i in range(9):
        px = rng.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
        layer = doc.add_raster(px, f"full {i}")
        doc.set_property(layer, "blend_mode", [BlendMode.NORMAL, BlendMode.MULTIPLY, BlendMode.SCREEN][i % 3])
    doc.composite()
    doc.projection.clear()
    t = time.perf_counter()
    doc.composite()
    return time.perf_counter() - t


def bench_empty_layers() -> int:
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    doc = Document(SIZE, SIZE)
    for _ in range(20):
        doc.add_layer()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(doc.layers) == 20
    return used


def bench_stroke_history() -> tuple[int, int]:
    doc = Document(SIZE, SIZE)
    layer = doc.add_layer()
    doc.fill_layer(layer, (255, 255, 255, 255))
    before = doc.history.nbytes
    paint_stroke(doc, layer, [(2000, 2000), (2300, 2000)], BrushSettings(size=20), BrushMode.PAINT)
    return doc.history.nbytes - before, layer.surface.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    t = time.perf_counter()
    doc = build_document(rng)
    print(f"built 4096x4096 document with {len(doc.layers)} layers in {time.perf_counter() - t:.1f} s")
    dab = bench_dab(doc, 100 if args.quick else 400)
    print(f"dab + dirty-rect composite: median {statistics.median(dab) * 1e3:.3f} ms, "
          f"p90 {sorted(dab)[int(len(dab) * 0.9)] * 1e3:.3f} ms")
    cold, warm = bench_full(doc, 2 if args.quick else 5)
    print(f"full composite (10 layers), cold: median {statistics.median(cold):.3f} s; "
          f"after a dab on the active layer: median {statistics.median(warm) * 1e3:.1f} ms")
    print(f"full composite, worst case (10 full semi-transparent layers): {bench_worst(rng):.3f} s")
    print(f"20 empty layers: {bench_empty_layers() / 1e6:.3f} MB")
    kept, layer_bytes = bench_stroke_history()
    print(f"history of one 300 px stroke (20 px brush): {kept / 1e6:.2f} MB (a layer copy would be "
          f"{layer_bytes / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
