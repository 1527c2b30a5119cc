"""The Tasks dock: forms from Params, background runs with progress and previews, cancel, failures,
results as one undoable layer with their record, and a GUI thread that stays responsive."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QElapsedTimer, Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from diffedit.document.document import Document
from diffedit.document.records import GenerationRecord
from diffedit.plugins import PluginHost
from diffedit.qt import param_form as pf
from diffedit.qt.main_window import MainWindow
from diffedit.qt.task_results import apply_result, preview_overlay
from diffedit.qt.tools import Tool
from diffedit.settings import Settings
from diffedit.tasks.base import RunContext, StepProgress, TaskRequest, TaskResult, TaskSpec
from diffedit.tasks.params import SamplingParams, make_params, param_specs

LONG = 60_000  # ms: generous for a loaded 2-core machine; runs take well under a second here


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tiny random checkpoints (inpaint, class-conditioned generate) and one broken folder."""
    from diffedit.diffusion.checkpoints import save_checkpoint
    from diffedit.diffusion.models import build

    root = tmp_path_factory.mktemp("models")
    save_checkpoint(root / "tiny-inpaint", build(task="inpaint", preset="tiny", seed=1))
    save_checkpoint(root / "tiny-classes",
                    build(task="generate", conditioning="class", class_names=["cat", "dog"], preset="tiny", seed=1))
    broken = root / "broken-inpaint"  # a valid manifest, but no weights: the run must fail clearly
    broken.mkdir()
    (broken / "diffedit.json").write_text(json.dumps(
        {"manifest_version": 1, "task": "inpaint", "conditioning": "none", "image_size": 32, "channels": 3}))
    patch = pytest.MonkeyPatch()
    patch.setenv("DIFFEDIT_MODEL_PATH", str(root))
    patch.setenv("DIFFEDIT_CONFIG_DIR", str(root / "config"))  # the user's settings add no model folders
    yield root
    patch.undo()


@pytest.fixture(scope="module")
def host(models: Path) -> PluginHost:
    host = PluginHost(settings=Settings(), autoload=False)
    host.discover()
    return host


@pytest.fixture
def win(qtbot, host: PluginHost, monkeypatch) -> Iterator[MainWindow]:
    window = MainWindow(host=host)
    monkeypatch.setattr(window, "_ask_save_changes", lambda: QMessageBox.StandardButton.Discard)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    assert window.task_panel.shutdown()
    assert window.task_panel.queue.threads_alive() == 0


def paint_mask(window: MainWindow, qtbot, mouse) -> np.ndarray:
    """A mask stroke with the mask brush (key M), by real mouse events on the canvas."""
    qtbot.keyClick(window.canvas, Qt.Key.Key_M)
    assert window.tools.tool is Tool.MASK
    mouse.drag(window, [(40, 28), (56, 30), (60, 36)])
    mask = window.doc.inpaint_mask.surface.to_array()[..., 0]
    assert (mask >= 128).any()
    return mask


def setup_inpaint(window: MainWindow, models: Path, steps: int, seed: int | None = 7) -> None:
    panel = window.task_panel
    panel.select_task("inpaint")
    assert panel.select_model(str(models / "tiny-inpaint"))
    panel.form.fields["steps"].set_value(steps)
    panel.form.fields["seed"].set_value(seed)


def history_state(doc: Document) -> tuple[list[str], int, list[int]]:
    return list(doc.history.steps), doc.history.index, [la.uid for la in doc.layers]


# -- forms ---------------------------------------------------------------------------------------------
def test_the_form_of_every_builtin_task_is_built_from_its_params(win: MainWindow, host: PluginHost) -> None:
    panel = win.task_panel
    tasks = host.registry.tasks
    assert [panel.task_combo.itemData(i) for i in range(panel.task_combo.count())] == list(tasks)
    for name, spec in tasks.items():
        panel.select_task(name)
        specs = param_specs(spec.params)
        assert list(panel.form.fields) == [s.name for s in specs]
        for s in specs:
            field = panel.form.fields[s.name]
            if s.widget == "sampler":
                assert isinstance(field, pf.ChoiceField)
                assert field.values_offered() == ["", *host.registry.samplers]
            elif s.widget == "seed":
                assert isinstance(field, pf.SeedField) and field.value() is None
            elif s.widget == "class":
                assert isinstance(field, pf.ChoiceField) and field.value() == ""
            elif s.widget == "prompt":
                assert isinstance(field, pf.PromptField)
            elif s.choices:
                assert isinstance(field, pf.ChoiceField) and field.values_offered() == list(s.choices)
            elif s.widget == "slider":
                assert isinstance(field, pf.SliderField)
                assert (field.number.spin.minimum(), field.number.spin.maximum()) == (s.minimum, s.maximum)
            elif s.type is int:
                assert isinstance(field, pf.IntField)
                assert (field.spin.minimum(), field.spin.maximum()) == (s.minimum, s.maximum)
            elif s.type is float:
                assert isinstance(field, pf.FloatField)
                assert (field.spin.minimum(), field.spin.maximum()) == (s.minimum, s.maximum)
            elif s.type is bool:
                assert isinstance(field, pf.BoolField)
        # the untouched form gives exactly the declared defaults
        assert make_params(spec.params, panel.form.values()) == make_params(spec.params)
        assert panel.model_row.isHidden() != spec.needs_model
        offered = [panel.model_combo.itemData(i) for i in range(panel.model_combo.count())]
        kinds = {"tiny-inpaint": "inpaint", "tiny-classes": "generate", "broken-inpaint": "inpaint"}
        expected = {p for p in offered if p and kinds[Path(p).name] in spec.model_tasks}
        assert set(filter(None, offered)) == expected
        if not expected:
            assert panel.model_path() is None and "Browse" in panel.model_combo.currentText()


def test_class_field_offers_the_models_classes_and_seed_field_takes_dice_or_random(
    win: MainWindow, models: Path, qtbot
) -> None:
    win.new_document(32, 32)
    panel = win.task_panel
    panel.select_task("generate")
    assert panel.select_model(str(models / "tiny-classes"))
    assert panel.form.fields["class_name"].values_offered() == ["", "cat", "dog"]
    seed = panel.form.fields["seed"]
    qtbot.mouseClick(seed.dice, Qt.MouseButton.LeftButton)
    assert isinstance(seed.value(), int)
    seed.edit.setText("random")
    assert seed.value() is None
    seed.edit.setText("abc")
    assert panel.run() is None and "whole number" in panel.status_label.text()
    assert not panel.choose_model_folder(models / "tiny-inpaint")  # an inpaint model cannot generate here...
    assert "'inpaint' model" in panel.status_label.text()
    assert not panel.choose_model_folder(models)  # ...and a folder without a manifest is refused
    assert "missing" in panel.status_label.text()


# -- runs ----------------------------------------------------------------------------------------------
def test_inpaint_run_adds_one_undoable_layer_with_its_record_and_runs_again(
    win: MainWindow, png_path: Path, models: Path, qtbot, mouse
) -> None:
    win.open_path(png_path)
    doc, panel = win.doc, win.task_panel
    mask = paint_mask(win, qtbot, mouse)
    before_pixels, before = doc.composite(), history_state(doc)
    setup_inpaint(win, models, steps=4)
    previews, progress = [], []
    panel.preview_changed.connect(lambda image, rect: previews.append((image, rect)))
    panel.queue.progress.connect(lambda job, step, total, ev, t: progress.append((step, total)))
    with qtbot.waitSignal(panel.run_done, timeout=LONG) as done:
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert done.args == ["finished"], panel.status_label.text()
    assert progress[-1] == (4, 4) and [s for s, _ in progress] == sorted(s for s, _ in progress)
    shown = [(image, rect) for image, rect in previews if image is not None]
    assert shown, "previews arrive while the run goes"
    ys, xs = np.nonzero(mask >= 128)
    context = panel.form.fields["context"].value()
    assert (shown[0][1].x, shown[0][1].y) == (max(0, xs.min() - context), max(0, ys.min() - context))
    assert previews[-1] == (None, None) and win.canvas.preview is None  # removed when the run ends

    layer = doc.active
    assert layer.name == "Inpainted" and [la.uid for la in doc.layers][:-1] == [*before[2][:-1], layer.uid]
    assert layer.record.task == "inpaint" and layer.record.seed == 7 and layer.record.steps == 4
    assert Path(layer.record.model) == models / "tiny-inpaint"
    assert doc.history.index == before[1] + 1
    outside = mask == 0  # the feathered blend weight is zero outside the mask
    assert np.array_equal(doc.composite()[outside], before_pixels[outside])
    view = panel.record_view
    assert view.value_text("Seed") == "7" and view.value_text("Steps") == "4" and view.value_text("Task") == "inpaint"
    assert "Inpainted" in win.statusBar().currentMessage()
    assert not win.canvas.mask_shown  # the tint would hide the result; painting a mask shows it again

    first = layer.surface.to_array()
    panel.form.fields["seed"].set_value(None)  # "run again" must bring the recorded seed back
    with qtbot.waitSignal(panel.run_done, timeout=LONG):
        qtbot.mouseClick(view.run_again_button, Qt.MouseButton.LeftButton)
    again = doc.active
    assert again is not layer and again.record.seed == 7 and again.name == "Inpainted 2"
    assert np.array_equal(again.surface.to_array(), first)  # same model, sampler, steps and seed

    win.undo()
    win.undo()
    assert history_state(doc)[2] == before[2] and np.array_equal(doc.composite(), before_pixels)
    win.redo()
    assert layer in doc.layers and again not in doc.layers


def test_cancel_midway_leaves_the_document_as_it_was_and_no_thread(
    win: MainWindow, png_path: Path, models: Path, qtbot, mouse
) -> None:
    win.open_path(png_path)
    doc, panel = win.doc, win.task_panel
    paint_mask(win, qtbot, mouse)
    before_pixels, before = doc.composite(), history_state(doc)
    setup_inpaint(win, models, steps=1000)
    with qtbot.waitSignal(panel.preview_changed, timeout=LONG, check_params_cb=lambda image, rect: image is not None):
        panel.run()
    assert win.canvas.preview is not None and panel.cancel_button.isEnabled()
    thread = panel.queue._thread
    with qtbot.waitSignal(panel.queue.idle, timeout=LONG):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert thread.isFinished() and panel.queue.threads_alive() == 0 and not panel.queue.busy
    assert panel.progress.value() < 1000 or panel.progress.format() == "Cancelled"
    assert history_state(doc) == before and np.array_equal(doc.composite(), before_pixels)
    assert win.canvas.preview is None and "cancelled" in panel.status_label.text()
    assert not panel.cancel_button.isEnabled()


def test_a_failing_run_shows_its_error_and_changes_nothing(
    win: MainWindow, png_path: Path, models: Path, qtbot, mouse
) -> None:
    win.open_path(png_path)
    doc, panel = win.doc, win.task_panel
    panel.select_task("inpaint")
    assert panel.select_model(str(models / "tiny-inpaint"))
    assert panel.run() is None and "no mask is painted" in panel.status_label.text()
    paint_mask(win, qtbot, mouse)
    panel.select_task("restore")  # no restore model exists here
    assert panel.run() is None and "choose a model" in panel.status_label.text()

    before = history_state(doc)
    panel.select_task("inpaint")
    assert panel.select_model(str(models / "broken-inpaint"))
    with qtbot.waitSignal(win.error_shown, timeout=LONG) as shown:
        panel.run()
    assert "unet" in shown.args[1].lower()
    qtbot.waitUntil(lambda: not panel.queue.busy)
    assert "failed" in panel.status_label.text() and history_state(doc) == before
    boxes = [b for b in win.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "Traceback" in boxes[0].detailedText()
    boxes[0].close()


def test_runs_queue_one_at_a_time_in_order(win: MainWindow, png_path: Path, models: Path, qtbot, mouse) -> None:
    win.open_path(png_path)
    panel = win.task_panel
    paint_mask(win, qtbot, mouse)
    setup_inpaint(win, models, steps=3, seed=1)
    starts, ends = [], []
    panel.queue.started.connect(lambda job: starts.append((job.id, panel.queue.threads_alive())))
    panel.queue.finished.connect(lambda job, result: ends.append(job.id))
    first = panel.run()
    panel.form.fields["seed"].set_value(2)
    second = panel.run()
    assert second.state == "queued" and panel.run_button.text() == "Add to queue"
    qtbot.waitUntil(lambda: len(ends) == 2 and not panel.queue.busy, timeout=LONG)
    assert ends == [first.id, second.id] and [s for s, _ in starts] == ends
    assert [la.record.seed for la in win.doc.layers if la.record] == [1, 2]


def test_the_gui_thread_stays_responsive_during_a_run(
    win: MainWindow, png_path: Path, models: Path, qtbot, mouse
) -> None:
    win.open_path(png_path)
    panel = win.task_panel
    paint_mask(win, qtbot, mouse)
    setup_inpaint(win, models, steps=40)
    panel.form.fields["context"].set_value(64)  # the whole 96x64 image: more work per step
    clock, gaps = QElapsedTimer(), []
    timer = QTimer()
    timer.setInterval(5)

    def tick() -> None:
        gaps.append(clock.restart())

    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    with qtbot.waitSignal(panel.run_done, timeout=LONG) as done:
        panel.run()
    timer.stop()
    assert done.args == ["finished"]
    worst = max(gaps[1:])
    print(f"\nevent-loop lag during a 40-step inpaint: max {worst} ms over {len(gaps)} ticks")
    assert worst < 250


def test_device_label_names_the_device_in_the_background(win: MainWindow, qtbot) -> None:
    label = win.device_label
    qtbot.waitUntil(lambda: label.device != "", timeout=LONG)
    assert label.device in ("CPU", "CUDA", "MPS") and label.text() == f"Device: {label.device}"


# -- the worker and queue on a task without a model --------------------------------------------------
@dataclass
class FakeParams(SamplingParams):
    fail: bool = False


def run_fake(request: TaskRequest, context: RunContext) -> TaskResult:
    """A slow task: sleeps each step (like a GPU wait), reports a preview, stops on cancel."""
    steps = request.params.steps
    for step in range(1, steps + 1):
        context.cancel.raise_if_cancelled()
        time.sleep(0.01)
        context.report(StepProgress(step, steps, step, np.full((4, 4, 4), step % 256, np.uint8)))
        if request.params.fail:
            raise RuntimeError("the fake task broke")
    return TaskResult(record=GenerationRecord(task="fake", seed=request.params.seed), image=np.zeros((4, 4, 4),
                                                                                                      np.uint8))


def test_the_queue_relays_failures_and_drops_results_cancelled_late(qtbot) -> None:
    from diffedit.qt.workers import RunQueue
    from diffedit.tasks.registry import Registry

    registry = Registry()
    registry.add_task(TaskSpec("fake", "Fake", "", FakeParams, f"{__name__}:run_fake", needs_model=False))
    queue = RunQueue()
    failed, finished, cancelled = [], [], []
    queue.failed.connect(lambda job, message, details: failed.append((message, details)))
    queue.finished.connect(lambda job, result: finished.append(result))
    queue.cancelled.connect(lambda job: cancelled.append(job))
    with qtbot.waitSignal(queue.idle, timeout=LONG):
        queue.submit(TaskRequest("fake", make_params(FakeParams, {"steps": 3, "fail": True})), registry)
    assert failed and failed[0][0] == "the fake task broke" and "RuntimeError" in failed[0][1]
    with qtbot.waitSignal(queue.idle, timeout=LONG):
        job = queue.submit(TaskRequest("fake", make_params(FakeParams, {"steps": 2})), registry)
        queued = queue.submit(TaskRequest("fake", make_params(FakeParams, {"steps": 2})), registry)
        queue.cancel_all()  # the running one may already be past its last step: no result either way
    assert not finished and job in cancelled and queued in cancelled and queue.threads_alive() == 0
    assert queue.shutdown()


# -- results -------------------------------------------------------------------------------------------
def test_mask_results_become_the_inpaint_mask_and_size_changes_are_reported(host: PluginHost) -> None:
    doc = Document(40, 30)
    doc.add_layer(name="Background")
    segment, outpaint = host.registry.tasks["segment"], host.registry.tasks["outpaint"]
    mask = np.zeros((30, 40), np.uint8)
    mask[5:10, 5:20] = 255
    record = GenerationRecord(task="segment", seed=3)
    steps = doc.history.index
    added, notes = apply_result(doc, segment, TaskResult(record=record, mask=mask))
    assert added[0] is doc.inpaint_mask and added[0].record is record and doc.history.index == steps + 1
    assert np.array_equal(doc.inpaint_mask.surface.to_array()[..., 0], mask)
    added, _ = apply_result(doc, segment, TaskResult(record=record, mask=mask, name="Cat"))
    assert added[0].name == "Cat" and added[0].role == "" and doc.inpaint_mask is not added[0]
    doc.history.undo()
    assert added[0] not in doc.layers

    wide = np.full((30, 50, 4), 200, np.uint8)
    bg = doc.layer_named("Background")
    steps = doc.history.index
    added, notes = apply_result(doc, outpaint, TaskResult(record=record, image=wide, offset=(-5, 0),
                                                          canvas_size=(50, 30)))
    assert (doc.width, doc.height) == (50, 30) and added[0].offset == (0, 0) and bg.offset == (5, 0)
    assert doc.history.index == steps + 1 and any("resized from 40×30 to 50×30" in n for n in notes)
    assert doc.inpaint_mask.width == 50  # the document-sized mask follows the canvas
    doc.history.undo()
    assert (doc.width, doc.height) == (40, 30) and added[0] not in doc.layers and bg.offset == (0, 0)

    superres = host.registry.tasks["super-resolve"]
    big = np.full((60, 80, 4), 90, np.uint8)
    added, notes = apply_result(doc, superres, TaskResult(record=record, image=big, scale=2, canvas_size=(80, 60)))
    assert (doc.width, doc.height) == (80, 60) and (bg.width, bg.height) == (80, 60)
    assert doc.history.index == steps + 1 and any("scaled" in n for n in notes)
    doc.history.undo()
    assert (doc.width, doc.height) == (40, 30) and (bg.width, bg.height) == (40, 30)


def test_an_outpaint_result_grows_the_window_canvas_in_one_step(window) -> None:
    from diffedit.tasks.base import TaskSpec

    window.new_document(40, 30)
    doc = window.doc
    spec = TaskSpec(name="outpaint", label="Outpaint", description="", params=type(None), runner="x:y")
    apply_result(doc, spec, TaskResult(record=GenerationRecord(task="outpaint"),
                                       image=np.full((50, 60, 4), 255, np.uint8), offset=(-10, -10),
                                       canvas_size=(60, 50)))
    assert window.canvas.display_image().size().toTuple() == (60, 50)
    assert window.undo_action.text() == "&Undo Outpaint: add Outpaint"
    window.undo()
    assert window.canvas.display_image().size().toTuple() == (40, 30)


def test_preview_overlay_sits_on_the_masked_area(host: PluginHost) -> None:
    doc = Document(40, 30)
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 12:22] = 255
    image, rect = preview_overlay(np.full((16, 20, 4), 255, np.uint8), doc, mask, margin=4)
    assert (rect.x, rect.y, rect.w, rect.h) == (8, 6, 20, 16)
    assert image.pixelColor(0, 0).alpha() == 0 and image.pixelColor(8, 8).alpha() == 255
    image, rect = preview_overlay(np.zeros((8, 8, 4), np.uint8), doc, None)
    assert rect == doc.bounds and image.width() == 8  # no mask: stretched over the canvas


def test_time_left_waits_for_a_second_step_and_then_uses_the_pace() -> None:
    from diffedit.qt.task_results import EtaClock

    clock = EtaClock()
    assert clock.text(1, 10, 12.0).startswith("estimating")  # the first step includes loading the model
    assert clock.text(3, 10, 14.0).startswith("about 7 s left")  # 1 s a step since then, 7 steps to go
