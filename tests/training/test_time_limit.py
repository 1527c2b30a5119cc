"""`--time-limit`: a run fits its length (and its cosine schedule) to the clock and stops by itself with
a final checkpoint. The clock is faked (no sleeping, no timing of this machine)."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import pytest

from diffedit.commands.train import main, parse_duration
from diffedit.training import loop, state, vae
from diffedit.training.config import TrainingError
from diffedit.training.loop import TIME_FIT_MIN_STEPS, Trainer
from diffedit.training.vae import VAETrainer


def _fake_clock(monkeypatch, now) -> None:
    """The loop's `time.perf_counter` becomes `now()` (only the loop's: pytest keeps its own clock)."""
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=now))


def test_a_time_limit_ends_the_run_with_a_checkpoint_and_the_end_of_the_schedule(image_folder, tiny, tmp_path,
                                                                                   monkeypatch) -> None:
    root = image_folder(n=10)
    out = tmp_path / "out"
    trainer = Trainer(tiny(root, out, steps=1_000_000, time_limit=40, checkpoint_every=1000, val_fraction=0.2, batch=2,
                           lr=1e-3))
    _fake_clock(monkeypatch, lambda: float(trainer.step))  # every step takes exactly one second
    progress = list(trainer.run())
    steps = [p.step for p in progress]
    assert steps == list(range(1, 41))  # 40 one-second steps fit in 40 s
    assert trainer.total == trainer.step == 40
    # until TIME_FIT_MIN_STEPS were timed the run's length was --steps; then the fitted one
    assert [p.total for p in progress[: TIME_FIT_MIN_STEPS - 1]] == [1_000_000] * (TIME_FIT_MIN_STEPS - 1)
    assert all(p.total == 40 for p in progress[TIME_FIT_MIN_STEPS - 1 :])
    last = progress[-1]
    assert last.checkpoint == str(state.step_folder(out, 40)) and last.eta_s == 0
    assert [s for s, _ in state.completed(out)] == [40]
    assert (out / "best" / "diffedit.json").is_file()
    assert json.loads((out / "best" / "diffedit.json").read_text())["made"]["steps"] == 40
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    assert len(lrs) == 40
    # the lr of step s was set after step s - 1: from step TIME_FIT_MIN_STEPS + 2 on, the fitted schedule's
    fitted = lrs[TIME_FIT_MIN_STEPS + 1 :]
    assert fitted[0] > 0.8 * 1e-3  # near its peak (a warm-up of 5% of 40 steps is over)
    assert fitted == sorted(fitted, reverse=True)  # the cosine decays...
    assert lrs[-1] < 0.01 * 1e-3  # ...to (nearly) zero at the last step


def test_fitting_to_the_clock(image_folder, tiny, tmp_path, monkeypatch) -> None:
    trainer = Trainer(tiny(image_folder(n=4), tmp_path / "out", steps=1000, time_limit=100))
    clock = [0.0]
    _fake_clock(monkeypatch, lambda: clock[0])

    def fit(step: int, now: float, first_step: int = 0, started: float = 0.0, deadline: float = 100.0) -> int:
        trainer.step, clock[0] = step, now
        trainer._fit_to_time_limit(first_step, started, deadline)
        return trainer.total

    # too few steps timed: the length stays what it was, however slow the first steps seem
    assert fit(TIME_FIT_MIN_STEPS - 1, 50.0) == 1000
    assert fit(14, 90.0, first_step=5) == 1000  # a resumed session times its own steps only
    # 10 steps in 10 s: 90 s left, 90 more steps
    assert fit(TIME_FIT_MIN_STEPS, 10.0) == TIME_FIT_MIN_STEPS + 90
    assert trainer.warmup == max(1, (TIME_FIT_MIN_STEPS + 90) // 20)  # warm-up follows the fitted length
    # re-measured every step: slower steps shorten the run
    assert fit(20, 40.0) == 20 + int(60 / 2.0)
    # room is kept for the final checkpoint, as long as the longest so far took
    trainer._checkpoint_seconds = 20.0
    assert fit(TIME_FIT_MIN_STEPS, 10.0) == TIME_FIT_MIN_STEPS + 70
    trainer._checkpoint_seconds = 0.0
    # fast steps: never beyond --steps
    assert fit(TIME_FIT_MIN_STEPS, 0.01) == 1000
    # past the deadline the run ends at the current step, even before TIME_FIT_MIN_STEPS
    assert fit(3, 100.0) == 3
    assert fit(TIME_FIT_MIN_STEPS + 5, 150.0) == TIME_FIT_MIN_STEPS + 5
    # not past it, but no room for another step and a checkpoint: also now, never before the current step
    trainer._checkpoint_seconds = 50.0
    assert fit(40, 80.0) == 40


@pytest.mark.parametrize("changes,message", [
    ({"time_limit": 0}, "time limit must be positive"),
    ({"time_limit": -5.0}, "time limit must be positive"),
    ({"workers": -1}, "workers must be 0"),
])
def test_bad_time_limits_and_worker_counts_are_refused(image_folder, tiny, tmp_path, changes, message) -> None:
    with pytest.raises(TrainingError, match=message):
        Trainer(tiny(image_folder(n=4), tmp_path / "out", **changes))
    assert not (tmp_path / "out").exists()


def test_vae_training_refuses_init(image_folder, tiny, tmp_path) -> None:
    with pytest.raises(TrainingError, match="--init is not supported for --task vae"):
        VAETrainer(tiny(image_folder(n=4), tmp_path / "out", task="vae", batch=2, init=str(tmp_path)))
    with pytest.raises(TrainingError, match="the time limit must be positive"):
        VAETrainer(tiny(image_folder(n=4), tmp_path / "out", task="vae", batch=2, time_limit=-5))


def test_a_time_limited_vae_run_ends_with_its_vae_and_the_end_of_its_schedule(image_folder, tiny, tmp_path,
                                                                                monkeypatch) -> None:
    root, out = image_folder(n=6), tmp_path / "vae"
    settings = {"task": "vae", "steps": 1_000_000, "time_limit": 20, "checkpoint_every": 15, "batch": 2,
                "lr": 1e-3}
    trainer = VAETrainer(tiny(root, out, **settings))
    monkeypatch.setattr(vae, "time", SimpleNamespace(perf_counter=lambda: float(trainer.step)))  # 1 s a step
    progress = []
    for p in trainer.run():
        progress.append(p)
        if p.step == 15:  # interrupted after the checkpoint of step 15
            break
    assert trainer.total == 20 and progress[-1].total == 20 and progress[-1].checkpoint == str(out / "vae")
    assert all(p.total == 1_000_000 for p in progress[: TIME_FIT_MIN_STEPS - 1])
    resumed = VAETrainer(tiny(root, out, resume=True, **settings))
    assert resumed.step == 15 and resumed.total == 20  # the saved, fitted length
    monkeypatch.setattr(vae, "time", SimpleNamespace(perf_counter=lambda: float(resumed.step - 15)))
    rest = list(resumed.run())
    assert [p.step for p in rest] == [16, 17, 18, 19, 20]
    assert rest[-1].checkpoint == str(out / "vae") and rest[-1].eta_s == 0
    assert [s for s, _ in state.completed(out, vae.MARKER)][-1] == 20
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"lr"' in line]
    assert len(lrs) == 20 and lrs[-1] < 0.01 * 1e-3  # the cosine fitted to 20 steps reached its end


def test_a_resumed_time_limited_run_keeps_its_fitted_schedule(image_folder, tiny, tmp_path, monkeypatch) -> None:
    """Until the resumed session has timed its own steps it keeps the length fitted before, rather than
    falling back to --steps (whose cosine would put the learning rate back at the warm-up)."""
    root, out = image_folder(n=10), tmp_path / "out"
    settings = {"steps": 1_000_000, "time_limit": 20, "checkpoint_every": 15, "val_fraction": 0.2, "batch": 2}
    first = Trainer(tiny(root, out, **settings))
    _fake_clock(monkeypatch, lambda: float(first.step))
    for p in first.run():
        if p.step == 15:  # interrupted after the checkpoint of step 15
            break
    assert first.total == 20
    resumed = Trainer(tiny(root, out, resume=True, **settings))
    assert resumed.step == 15 and resumed.total == 20  # the saved, fitted length, not 1_000_000
    _fake_clock(monkeypatch, lambda: float(resumed.step - 15))
    assert [p.step for p in resumed.run()][-1] == 20  # 5 more steps: the saved end of the schedule
    # a run that reached its end gets a new length when resumed with a new time limit
    extended = Trainer(tiny(root, out, resume=True, **settings))
    assert extended.step == 20 and extended.total == 1_000_000


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("45m", 2700), ("2h", 7200), ("1h30m", 5400),
                                          ("1h30", 5400), ("0.5h", 1800), ("1m30s", 90), (" 2h ", 7200)])
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "   ", "abc", "0", "0s", "5x", "h", "-5", "1.5.5m"])
def test_parse_duration_refuses(text) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_cli_refuses_a_bogus_time_limit_as_a_usage_error(image_folder, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--data", str(image_folder(n=4)), "--out", str(tmp_path / "run"), "--time-limit", "bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--time-limit" in err and "'bogus' is not a duration" in err
    assert not (tmp_path / "run").exists()


def test_cli_options_reach_the_config(tmp_path) -> None:
    from diffedit.commands.train import _parser, config_from_args

    base = ["--data", str(tmp_path), "--out", str(tmp_path / "run")]
    config = config_from_args(_parser().parse_args([*base, "--time-limit", "1h30m", "--workers", "3", "--init",
                                                    str(tmp_path / "best"), "--preset", "conv"]))
    assert (config.time_limit, config.workers, config.init, config.preset) == (5400, 3, str(tmp_path / "best"),
                                                                                "conv")
    default = config_from_args(_parser().parse_args(base))
    assert (default.time_limit, default.workers, default.init) == (None, None, None)
