"""Checkpoint folders: exact round trips, manifest checks that name the file, SHA-256 verification,
atomic saves, legacy state dicts, and pickles that would run code refused without running it."""

from __future__ import annotations

import builtins
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from diffedit.diffusion import checkpoints
from diffedit.diffusion.checkpoints import (
    MANIFEST_NAME,
    CheckpointError,
    Manifest,
    detect_stable_diffusion,
    file_sha256,
    inspect_checkpoint,
    load_checkpoint,
    load_legacy_weights,
    read_manifest,
    save_checkpoint,
)

UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"


def _copy(saved_checkpoint, kind: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_checkpoint(kind), tmp_path / kind))


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _outputs(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model.unet(**inputs).sample


# ---------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("kind", ["unconditional", "class", "inpaint", "text", "latent"])
def test_round_trip_gives_the_same_outputs(kind, tiny_bundle, saved_checkpoint, unet_inputs) -> None:
    bundle, folder = tiny_bundle(kind), saved_checkpoint(kind)
    loaded = load_checkpoint(folder)
    inputs = unet_inputs(bundle, seed=3)
    if kind == "text":  # the loaded encoder must give the same states for the same prompt
        loaded_states = loaded.text_encoder.encode(["a red fox"])
        assert torch.allclose(loaded_states, inputs["encoder_hidden_states"], atol=1e-5)
    assert torch.allclose(_outputs(loaded, inputs), _outputs(bundle, inputs), atol=1e-5)
    if kind == "latent":
        image = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            assert torch.allclose(loaded.vae.encode(image).latent_dist.mean,
                                  bundle.vae.encode(image).latent_dist.mean, atol=1e-5)
    assert loaded.scheduler_config == bundle.scheduler_config
    assert loaded.manifest.to_json() | {"made": None} == bundle.manifest.to_json() | {"made": None}
    assert loaded.unet_sha256 == file_sha256(folder / UNET_WEIGHTS)
    assert loaded.manifest.made.weights_sha256[UNET_WEIGHTS] == loaded.unet_sha256
    assert set(loaded.manifest.made.versions) == {"diffedit", "torch", "diffusers"}
    assert not loaded.unet.training


def test_manifest_has_exactly_the_contract_keys(saved_checkpoint) -> None:
    data = json.loads((saved_checkpoint("class") / MANIFEST_NAME).read_text())
    assert list(data) == ["manifest_version", "task", "conditioning", "image_size", "channels",
                          "condition_channels", "mask_channel", "scale_factor", "latent", "class_names",
                          "default_sampler", "default_steps", "prediction_type", "start", "tasks", "residual",
                          "scale_factors", "hole_fill", "license", "source", "made", "description"]
    assert list(data["made"]) == ["data", "steps", "seed", "versions", "weights_sha256"]
    assert data["manifest_version"] == 1 and data["class_names"] == ["cat", "dog", "fox"]
    assert Manifest.from_json(data).to_json() == data


def test_loads_in_the_asked_dtype(saved_checkpoint) -> None:
    loaded = load_checkpoint(saved_checkpoint("latent"), "cpu", torch.bfloat16)
    assert {p.dtype for p in loaded.unet.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in loaded.vae.parameters()} == {torch.bfloat16}


# --------------------------------------------------------------------------- manifest checks
@pytest.mark.parametrize(("changes", "message"), [
    ({"manifest_version": 2}, "unknown manifest_version 2"),
    ({"task": ...}, "missing key 'task'"),
    ({"task": "paint"}, "unknown task 'paint'"),
    ({"channels": "3"}, "'channels' must be int"),
    ({"mask_channel": 1}, "'mask_channel' must be bool"),
    ({"conditioning": "class"}, "needs class_names"),
    ({"made": {"weights_sha256": {"../../etc/passwd": "0" * 64}}}, "must be relative"),
])
def test_bad_manifest_values_name_the_file(saved_checkpoint, tmp_path, changes, message) -> None:
    folder = _copy(saved_checkpoint, "inpaint", tmp_path)
    _edit_json(folder / MANIFEST_NAME, **changes)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(folder)
    assert str(info.value).startswith(str(folder / MANIFEST_NAME))


def test_unreadable_or_missing_manifest(saved_checkpoint, tmp_path) -> None:
    folder = _copy(saved_checkpoint, "inpaint", tmp_path)
    (folder / MANIFEST_NAME).write_text('{"manifest_version": 1,\n "task": }')
    with pytest.raises(CheckpointError, match=r"diffedit.json: not valid JSON \(line 2"):
        read_manifest(folder)
    (folder / MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointError, match=r"diffedit.json: missing"):
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match="no such folder"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize(("remove", "named"), [
    ("unet", "unet"),
    ("unet/diffusion_pytorch_model.safetensors", "unet: no weights"),
    ("unet/config.json", "unet/config.json: missing"),
    ("scheduler", "scheduler/scheduler_config.json: missing"),
])
def test_missing_parts_are_named(saved_checkpoint, tmp_path, remove, named) -> None:
    folder = _copy(saved_checkpoint, "inpaint", tmp_path)
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(CheckpointError, match=named) as info:
        load_checkpoint(folder)
    assert str(folder) in str(info.value)


@pytest.mark.parametrize(("kind", "remove", "named"), [
    ("latent", "vae", "vae/config.json: missing"),
    ("text", "tokenizer", "tokenizer: missing"),
    ("text", "text_encoder", "text_encoder: missing"),
])
def test_missing_optional_parts_are_named(saved_checkpoint, tmp_path, kind, remove, named) -> None:
    folder = _copy(saved_checkpoint, kind, tmp_path)
    shutil.rmtree(folder / remove)
    with pytest.raises(CheckpointError, match=named):
        load_checkpoint(folder)


@pytest.mark.parametrize(("kind", "changes", "message"), [
    ("inpaint", {"mask_channel": False}, r"in_channels is 7 but diffedit.json says channels 3 \+ condition_channels "
                                         r"3 \+ mask 0 = 6"),
    ("inpaint", {"channels": 1, "condition_channels": 5}, "out_channels is 3 but the model must predict 1"),
    ("class", {"class_names": ["cat", "dog"]}, "num_class_embeds is 4 but diffedit.json names 2 classes"),
    ("latent", {"channels": 1, "condition_channels": 4}, "vae/config.json: in_channels is 3"),
    ("unconditional", {"conditioning": "text"}, "text_encoder: missing"),
])
def test_channels_that_disagree_with_the_unet_are_refused(saved_checkpoint, tmp_path, kind, changes, message) -> None:
    folder = _copy(saved_checkpoint, kind, tmp_path)
    _edit_json(folder / MANIFEST_NAME, **changes)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(folder)
    assert str(folder) in str(info.value)


# ------------------------------------------------------------------------------------- SHA-256
def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # inside the tensor data: the file stays a valid safetensors file
    path.write_bytes(bytes(data))


def test_sha256_mismatch_is_detected(saved_checkpoint, tmp_path) -> None:
    folder = _copy(saved_checkpoint, "inpaint", tmp_path)
    _flip_last_byte(folder / UNET_WEIGHTS)
    with pytest.raises(CheckpointError, match=r"SHA-256 does not match diffedit\.json") as info:
        load_checkpoint(folder)
    assert str(info.value).startswith(str(folder / UNET_WEIGHTS))
    loaded = load_checkpoint(folder, verify=False)  # the user may opt out; the hash still identifies it
    assert loaded.unet_sha256 == file_sha256(folder / UNET_WEIGHTS)


def test_sha256_of_text_encoder_and_unlisted_files(saved_checkpoint, tmp_path) -> None:
    folder = _copy(saved_checkpoint, "text", tmp_path)
    _flip_last_byte(folder / "text_encoder" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"text_encoder/model.safetensors: SHA-256 does not match"):
        load_checkpoint(folder)
    folder = _copy(saved_checkpoint, "inpaint", tmp_path / "again")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["made"]["weights_sha256"] = {"scheduler/other.safetensors": "0" * 64}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"other\.safetensors: listed in diffedit\.json but missing"):
        load_checkpoint(folder)
    manifest["made"]["weights_sha256"] = {"unet/config.json": file_sha256(folder / "unet" / "config.json")}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"diffusion_pytorch_model\.safetensors: not listed"):
        load_checkpoint(folder)


# ------------------------------------------------------------------------------- atomic saves
def _siblings(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir())


def test_failed_save_leaves_no_partial_folder(tiny_bundle, tmp_path, monkeypatch) -> None:
    def fail(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints, "file_sha256", fail)  # fails after the weights are written
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path / "new", tiny_bundle("latent"))
    assert _siblings(tmp_path) == []


def test_failed_overwrite_keeps_the_old_checkpoint(tiny_bundle, saved_checkpoint, tmp_path, monkeypatch) -> None:
    folder = _copy(saved_checkpoint, "inpaint", tmp_path)
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    bundle = tiny_bundle("class")

    def broken_save(*args, **kwargs):
        raise RuntimeError("disk went away")

    monkeypatch.setattr(bundle.unet, "save_pretrained", broken_save)
    with pytest.raises(RuntimeError, match="disk went away"):
        save_checkpoint(folder, bundle, overwrite=True)
    monkeypatch.undo()
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert _siblings(tmp_path) == ["inpaint"]
    save_checkpoint(folder, bundle, overwrite=True)  # a successful overwrite replaces it whole
    assert read_manifest(folder).conditioning == "class"
    assert _siblings(tmp_path) == ["inpaint"]


def test_save_refuses_to_replace_what_it_should_not(tiny_bundle, tmp_path) -> None:
    taken = tmp_path / "photos"
    taken.mkdir()
    (taken / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(taken, tiny_bundle("unconditional"))
    with pytest.raises(CheckpointError, match="not a DiffEdit checkpoint"):
        save_checkpoint(taken, tiny_bundle("unconditional"), overwrite=True)
    assert (taken / "holiday.jpg").read_bytes() == b"precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    save_checkpoint(empty, tiny_bundle("unconditional"))  # an empty folder is fine
    assert (empty / MANIFEST_NAME).is_file()


# ------------------------------------------------------------------------- legacy state dicts
class _Payload:
    """Unpickling this calls `func(*args)`: what a malicious checkpoint does."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


@pytest.mark.parametrize("how", ["torch.save", "plain pickle"])
@pytest.mark.parametrize("payload", ["open", "exec"])
def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, how, payload) -> None:
    marker = tmp_path / "pwned"
    evil = _Payload(builtins.open, str(marker), "w") if payload == "open" else _Payload(exec, _marker_code(marker))
    state = {"conv_in.weight": torch.zeros(2), "extra": evil}
    path = tmp_path / "model.ckpt"
    if how == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state, protocol=2))
    with pytest.raises(CheckpointError, match="refused: the file contains Python objects that would run code"):
        load_legacy_weights(path)
    assert not marker.exists()
    # The control: an ordinary unpickler really would have run it.
    control = tmp_path / "control"
    control_state = {"x": _Payload(exec, _marker_code(control))}
    pickle.loads(pickle.dumps(control_state))
    assert control.exists()


def test_malicious_file_in_a_checkpoint_folder_never_runs(saved_checkpoint, tmp_path) -> None:
    folder = tmp_path / "legacy"
    folder.mkdir()
    shutil.copy(saved_checkpoint("unconditional") / MANIFEST_NAME, folder)
    shutil.copy(saved_checkpoint("unconditional") / "unet" / "config.json", folder / "config.json")
    _edit_json(folder / MANIFEST_NAME, made={})
    marker = tmp_path / "pwned"
    torch.save({"w": _Payload(exec, _marker_code(marker))}, folder / "model.pt")
    with pytest.raises(CheckpointError, match=r"model\.pt: refused"):
        load_checkpoint(folder)
    assert not marker.exists()


def test_legacy_weights_load_in_both_layouts(tiny_bundle, saved_checkpoint, tmp_path, unet_inputs) -> None:
    bundle = tiny_bundle("class")
    inputs = unet_inputs(bundle, seed=5)
    expected = _outputs(bundle, inputs)
    # Layout 2: unet/ holds config.json and a pickled state dict, as old diffusers saved it.
    folder = _copy(saved_checkpoint, "class", tmp_path)
    (folder / UNET_WEIGHTS).unlink()
    torch.save(bundle.unet.state_dict(), folder / "unet" / "diffusion_pytorch_model.bin")
    _edit_json(folder / MANIFEST_NAME, made={})  # a hand-written manifest lists no hashes
    assert torch.allclose(_outputs(load_checkpoint(folder), inputs), expected, atol=1e-5)
    # Layout 3: one file beside diffedit.json and config.json, wrapped as training scripts do,
    # with DDP's "module." prefixes, and no scheduler/ (made from the manifest).
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(folder / MANIFEST_NAME, single)
    shutil.copy(folder / "unet" / "config.json", single / "config.json")
    wrapped = {"state_dict": {f"module.{k}": v for k, v in bundle.unet.state_dict().items()}, "step": 100}
    torch.save(wrapped, single / "last.ckpt")
    loaded = load_checkpoint(single)
    assert torch.allclose(_outputs(loaded, inputs), expected, atol=1e-5)
    assert loaded.scheduler_config["num_train_timesteps"] == 1000
    assert loaded.unet_sha256 == file_sha256(single / "last.ckpt")
    _, parts = inspect_checkpoint(single)
    assert parts.legacy and parts.unet_weights == [single / "last.ckpt"]


def test_legacy_weights_that_do_not_fit_are_named(saved_checkpoint, tmp_path) -> None:
    folder = _copy(saved_checkpoint, "inpaint", tmp_path)
    (folder / UNET_WEIGHTS).unlink()
    torch.save({"conv_in.weight": torch.zeros(1)}, folder / "unet" / "weights.pt")
    _edit_json(folder / MANIFEST_NAME, made={})
    with pytest.raises(CheckpointError, match=r"weights.pt: weights do not fit .*config.json \(\d+ missing"):
        load_checkpoint(folder)
    (folder / "unet" / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"weights\.pt: not a readable PyTorch weights file"):
        load_checkpoint(folder)
    (folder / "unet" / "weights.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"weights\.pt: not a readable PyTorch weights file \(EOFError\)"):
        load_checkpoint(folder)
    torch.save({"a": 1}, folder / "unet" / "weights.pt")
    with pytest.raises(CheckpointError, match="does not hold a state dict of tensors"):
        load_checkpoint(folder)
    torch.save({"a": torch.zeros(1)}, folder / "unet" / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"unet: holds several weight files \(other\.ckpt, weights\.pt\)"):
        load_checkpoint(folder)


# ------------------------------------------------------------------------ Stable Diffusion folders
@pytest.mark.parametrize("name", ["StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline",
                                  "StableDiffusionInpaintPipeline", "StableDiffusionUpscalePipeline"])
def test_stable_diffusion_folders_are_detected(tmp_path, name) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": name, "unet": ["diffusers", "x"]}))
    assert detect_stable_diffusion(tmp_path) == name
    with pytest.raises(CheckpointError, match=f"Stable Diffusion pipeline \\({name}\\)"):
        load_checkpoint(tmp_path)


def test_other_folders_are_not_stable_diffusion(tmp_path, saved_checkpoint) -> None:
    assert detect_stable_diffusion(saved_checkpoint("inpaint")) is None
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    assert detect_stable_diffusion(tmp_path) is None
    (tmp_path / "model_index.json").write_text("{broken")
    assert detect_stable_diffusion(tmp_path) is None
