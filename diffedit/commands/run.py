"""`diffedit run TASK ...`: run any registered task on files, with a progress bar.

The task's flags come from its parameter declaration, so a plugin's task gets its CLI for free.
Bad input exits 1 with a one-line reason and writes no output file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from diffedit.document.imagefiles import ImageFileError, png_text_chunks, read_image, write_image
from diffedit.document.io import open_document
from diffedit.plugins import PluginHost
from diffedit.tasks.base import RunContext, StepProgress, TaskRequest, TaskResult
from diffedit.tasks.params import ParamError, add_cli_arguments, cli_values, make_params


def _mask_from_file(path: str) -> np.ndarray:
    """White (or opaque white) is the area to change; a greyscale or RGBA image both work."""
    px = read_image(path).pixels.astype(np.float32)
    grey = (px[..., 0] * 0.299 + px[..., 1] * 0.587 + px[..., 2] * 0.114) * px[..., 3] / 255
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def flatten_result(result: TaskResult, image: np.ndarray | None) -> np.ndarray:
    """What the user sees after the run: the result layer over the input (a grown canvas for outpainting)."""
    if result.mask is not None:
        return np.dstack([result.mask] * 3 + [np.full_like(result.mask, 255)])
    if result.image is None:
        raise ImageFileError("the task returned no image")
    if image is None or result.scale != 1:
        return result.image
    from diffedit.document.document import Document

    ox, oy = result.offset
    if result.canvas_size is not None:  # the canvas grew: the old image moves by -offset
        doc = Document(*result.canvas_size)
        doc.add_raster(image, "input", offset=(-ox, -oy))
        doc.add_raster(result.image, "result")
    else:
        doc = Document(image.shape[1], image.shape[0])
        doc.add_raster(image, "input")
        doc.add_raster(result.image, "result", offset=(ox, oy))
    return doc.composite()


def _write_result(result: TaskResult, image: np.ndarray | None, out: str) -> None:
    records = [{"layer": result.name or result.record.task, "record": result.record.to_json()}]
    info = png_text_chunks(records, result.record.to_parameters_text())
    write_image(out, flatten_result(result, image), info)


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    host = PluginHost()
    registry = host.discover()
    tasks = ", ".join(sorted(registry.tasks)) or "none"
    if not argv or argv[0].startswith("-"):
        parser = argparse.ArgumentParser(prog="diffedit run", description=f"Run a task. Tasks: {tasks}.")
        parser.add_argument("task", help="task name (see 'diffedit tasks')")
        parser.parse_args(argv)  # prints help or the usage error
        return 2
    name = argv[0]
    spec = registry.tasks.get(name)
    if spec is None:
        print(f"diffedit run: error: unknown task '{name}'; available tasks: {tasks}", file=sys.stderr)
        return 1
    parser = argparse.ArgumentParser(prog=f"diffedit run {name}", description=spec.description)
    parser.add_argument("--model", help="checkpoint folder (default: the task's default model, when installed)")
    parser.add_argument("--image", help="input image or .ora document")
    parser.add_argument("--mask", help="mask image: white marks the area to change")
    parser.add_argument("--out", required=True, help="output file (.png, .jpg or .webp)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_cli_arguments(parser, spec.params)
    args = parser.parse_args(argv[1:])
    try:
        from diffedit.document.imagefiles import export_format

        export_format(args.out)
        params = make_params(spec.params, cli_values(args, spec.params))
        image = open_document(args.image).document.composite() if args.image else None
        mask = _mask_from_file(args.mask) if args.mask else None
        request = TaskRequest(task=name, params=params, model=args.model or _default_model(name, spec.model_tasks),
                              image=image, mask=mask, device=args.device, precision=args.precision)
        result = _run_with_progress(request, registry, args.quiet)
        _write_result(result, image, args.out)
    except KeyboardInterrupt:
        print("diffedit run: cancelled", file=sys.stderr)
        return 130
    except (ImageFileError, ParamError, ValueError, RuntimeError, OSError) as exc:
        print(f"diffedit run: error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}",
              file=sys.stderr)
        return 1
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {args.out} (seed {result.record.seed})")
    return 0


def _default_model(task: str, model_tasks: tuple[str, ...]) -> str | None:
    """The default model of the task itself, else of the first model task it accepts (outpaint: inpaint)."""
    from diffedit.models_registry import default_model_for

    for candidate in (task, *model_tasks):
        found = default_model_for(candidate)
        if found is not None:
            return found
    return None


def _run_with_progress(request: TaskRequest, registry, quiet: bool) -> TaskResult:  # type: ignore[no-untyped-def]
    from diffedit.tasks.runner import run_task

    bar = None

    def progress(p: StepProgress) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=p.total, desc=request.task, unit="step", file=sys.stderr)
        bar.n = p.step
        bar.refresh()

    try:
        return run_task(request, registry, RunContext(progress=progress, preview_every=0))
    finally:
        if bar is not None:
            bar.close()
