"""`diffedit train`: a tiny run with its progress bar, resume, and one-line errors."""

from __future__ import annotations

import pytest

from diffedit.commands.train import main


def test_cli_trains_resumes_and_reports(image_folder, tmp_path, capsys) -> None:
    root = image_folder(n=4)
    out = tmp_path / "run"
    base = ["--data", str(root), "--task", "generate", "--preset", "tiny", "--size", "16", "--batch", "2",
            "--out", str(out), "--seed", "1", "--lr", "1e-3", "--checkpoint-every", "2", "--keep", "1",
            "--device", "cpu", "--sample-steps", "1"]
    assert main([*base, "--steps", "2"]) == 0
    captured = capsys.readouterr()
    assert "step 2: saved" in captured.err and "img/s" in captured.err and "loss" in captured.err
    assert "done:" in captured.out
    assert main([*base, "--steps", "4", "--resume"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000004", "step-000004.state.pt"]


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "steps must be at least 1"),
    (["--batch", "9"], "fewer than the batch size 9"),
    (["--latent"], "latent training needs a trained VAE"),
    (["--conditioning", "text"], "have no caption"),
])
def test_cli_errors_are_one_line(image_folder, tmp_path, capsys, args, message) -> None:
    root = image_folder(n=4)
    code = main(["--data", str(root), "--out", str(tmp_path / "run"), "--size", "16", "--batch", "2", *args])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.startswith("diffedit train: error:") and err.count("\n") == 1
