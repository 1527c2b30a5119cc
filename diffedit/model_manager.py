"""The model manager: list the models in the model folders, describe them, add folders, import,
fetch (on request only) and remove. Shared by `diffedit models` and the editor's Models dialog.

A model is a DiffEdit checkpoint folder (with `diffedit.json`) or a diffusers Stable Diffusion
folder (with `model_index.json`); an unconditional diffusers DDPM/DDIM pipeline folder gets a
`diffedit.json` (task generate) when it is imported or fetched. Source and license come from the
manifest's optional `source` and `license` keys, else from `.diffedit-source.json` (written when a
model is imported or fetched), else from a model card's `license:` line. The weights hash is the
manifest's `made.weights_sha256` (one file: its digest; several: the digest of their sorted
digests), or is computed when asked. Imported and fetched models go to the user models folder,
which is added to `settings.model_folders` on first use; only models there are deleted by `remove`.
Qt-free.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from diffedit.downloads import CancelToken, Progress, download, fetch_hf_repo, file_sha256, part_path
from diffedit.models_registry import MANIFEST, find_models, model_folders
from diffedit.settings import Settings, config_dir

SOURCE_FILE = ".diffedit-source.json"
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
SD_TASKS = {"StableDiffusionPipeline": ["generate"], "StableDiffusionImg2ImgPipeline": ["img2img"],
            "StableDiffusionInpaintPipeline": ["inpaint"], "StableDiffusionUpscalePipeline": ["super-resolve"]}
UNCONDITIONAL_PIPELINES = ("DDPMPipeline", "DDIMPipeline")


class ModelError(ValueError):
    """What the user asked cannot be done (the message says why)."""


@dataclass
class ModelInfo:
    path: Path
    name: str
    kind: str  # "diffedit" | "stable-diffusion"
    tasks: list[str]
    size: int  # bytes on disk
    source: str = "local"
    license: str = ""
    sha256: str | None = None  # of the weights; None until computed for models without a manifest hash
    description: str = ""
    folder: Path | None = None  # the model folder it was found in
    managed: bool = False  # inside the user models folder: `remove` deletes it

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "kind": self.kind, "tasks": self.tasks, "size": self.size,
                "source": self.source, "license": self.license, "sha256": self.sha256,
                "description": self.description, "managed": self.managed}


@dataclass
class CatalogueItem:
    name: str
    source: str  # "hf" or "url"
    repo: str | None = None
    revision: str | None = None
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    license: str = ""
    tasks: list[str] = field(default_factory=list)
    format: str = ""
    description: str = ""
    allow_patterns: list[str] | None = None

    @property
    def where(self) -> str:
        return (f"{self.repo}@{self.revision or 'main'}" if self.source == "hf" else self.url) or ""


# ------------------------------------------------------------------------------------------ folders
def user_models_dir() -> Path:
    """Where imports and downloads go: DIFFEDIT_MODELS_DIR, else `models/` in the config folder when
    DIFFEDIT_CONFIG_DIR is set (tests, portable installs), else the user data folder."""
    env = os.environ.get("DIFFEDIT_MODELS_DIR")
    if env:
        return Path(env)
    if os.environ.get("DIFFEDIT_CONFIG_DIR"):
        return config_dir() / "models"
    from platformdirs import user_data_dir

    return Path(user_data_dir("diffedit")) / "models"


def add_folder(folder: str | os.PathLike[str], settings: Settings | None = None) -> Path:
    """Add a folder to the model folders in settings (saved); returns it, resolved."""
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ModelError(f"{path}: not a folder")
    settings = settings or Settings.load()
    if str(path) not in settings.model_folders:
        settings.model_folders.append(str(path))
        settings.save()
    return path


def remove_folder(folder: str | os.PathLike[str], settings: Settings | None = None) -> bool:
    """Forget a model folder (its files stay); False when it was not in the settings."""
    settings = settings or Settings.load()
    wanted = {str(folder), str(Path(folder).expanduser().resolve())}
    kept = [f for f in settings.model_folders if f not in wanted]
    if len(kept) == len(settings.model_folders):
        return False
    settings.model_folders = kept
    settings.save()
    return True


def _ensure_user_dir(settings: Settings | None = None) -> Path:
    target = user_models_dir()
    target.mkdir(parents=True, exist_ok=True)
    add_folder(target, settings)
    return target.resolve()


# ------------------------------------------------------------------------------------------ describe
def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _card_license(folder: Path) -> str:
    """`license:` from a model card's YAML front matter (README.md), as Hugging Face writes it."""
    try:
        lines = (folder / "README.md").read_text(encoding="utf-8", errors="replace").splitlines()[:60]
    except OSError:
        return ""
    if not lines or lines[0].strip() != "---":
        return ""
    for line in lines[1:]:
        if line.strip() == "---":
            break
        if line.startswith("license:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return ""


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def combined_sha256(digests: list[str]) -> str:
    """One file: its digest. Several: the digest of their sorted digests, one per line."""
    return digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def compute_sha256(folder: Path) -> str | None:
    digests = [file_sha256(p) for p in weight_files(folder)]
    return combined_sha256(digests) if digests else None


def describe(path: str | os.PathLike[str], compute_hash: bool = False, tasks: list[str] | None = None) -> ModelInfo:
    """What a model folder is; ModelError when it is neither a checkpoint nor a Stable Diffusion folder."""
    from diffedit.diffusion.checkpoints import detect_stable_diffusion

    root = Path(path)
    manifest = _read_json(root / MANIFEST)
    sidecar = _read_json(root / SOURCE_FILE)
    if manifest:
        kind = "diffedit"
        found = [str(manifest.get("task", ""))] + [str(t) for t in manifest.get("tasks", []) or []]
        made = manifest.get("made") if isinstance(manifest.get("made"), dict) else {}
        listed = made.get("weights_sha256") or {}
        listed = listed if isinstance(listed, dict) else {}
        sha = combined_sha256([str(v).lower() for v in listed.values()]) if listed else None
    else:
        pipeline = detect_stable_diffusion(root)
        if pipeline is None:
            raise ModelError(f"{root}: neither a DiffEdit checkpoint ({MANIFEST}) nor a Stable Diffusion folder")
        kind, found, sha = "stable-diffusion", SD_TASKS.get(pipeline, []), sidecar.get("weights_sha256")
    if sha is None and compute_hash:
        sha = compute_sha256(root)
    all_tasks = list(dict.fromkeys(t for t in (tasks or found) if t))
    users = user_models_dir()
    with contextlib.suppress(OSError):
        users = users.resolve()
    return ModelInfo(
        path=root, name=root.name, kind=kind, tasks=all_tasks, size=folder_size(root),
        source=str(manifest.get("source") or sidecar.get("source") or "local"),
        license=str(manifest.get("license") or sidecar.get("license") or _card_license(root)),
        sha256=sha, description=str(manifest.get("description", "")),
        managed=root.resolve().parent == users)


def scan(folders: list[Path] | None = None, compute_hash: bool = False) -> list[ModelInfo]:
    """Every model in the model folders (settings, DIFFEDIT_MODEL_PATH, shipped), each once."""
    from diffedit.diffusion.checkpoints import detect_stable_diffusion

    folders = folders if folders is not None else model_folders()
    entries = {e.path.resolve(): e for e in find_models(folders)}
    seen: set[Path] = set()
    found: list[ModelInfo] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))]:
            real = candidate.resolve()
            if real in seen:
                continue
            if not (candidate / MANIFEST).is_file() and detect_stable_diffusion(candidate) is None:
                continue
            seen.add(real)
            entry = entries.get(real)
            tasks = list(getattr(entry, "tasks", [entry.task])) if entry is not None else None
            info = describe(candidate, compute_hash, tasks)
            info.folder = folder
            found.append(info)
    return found


def find(name_or_path: str, folders: list[Path] | None = None) -> ModelInfo:
    """A model by folder path or by name (ModelError when unknown or ambiguous)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return describe(path)
    matches = [m for m in scan(folders) if m.name == name_or_path]
    if not matches:
        raise ModelError(f"no model named {name_or_path!r} (see 'diffedit models list')")
    if len(matches) > 1:
        raise ModelError(f"{len(matches)} models are named {name_or_path!r}: give a path "
                         f"({', '.join(str(m.path) for m in matches)})")
    return matches[0]


# --------------------------------------------------------------------------------- import / remove
def _validate(folder: Path) -> str:
    from diffedit.diffusion.checkpoints import detect_stable_diffusion, inspect_checkpoint

    if (folder / MANIFEST).is_file():
        inspect_checkpoint(folder)  # CheckpointError says what is wrong
        return "diffedit"
    if detect_stable_diffusion(folder) is not None:
        return "stable-diffusion"
    if _read_json(folder / "model_index.json").get("_class_name") in UNCONDITIONAL_PIPELINES:
        return "diffusers"  # gets a manifest on import (adopt_pipeline)
    raise ModelError(f"{folder}: neither a DiffEdit checkpoint ({MANIFEST}) nor a diffusers Stable Diffusion, "
                     f"{' or '.join(UNCONDITIONAL_PIPELINES)} folder")


def adopt_pipeline(folder: Path, source: str = "", license: str = "") -> bool:
    """Give an unconditional diffusers pipeline folder (DDPM, DDIM: unet/ + scheduler/) a `diffedit.json`
    for the generate task, so it loads as a checkpoint folder; False when it is not one or has one."""
    pipeline = _read_json(folder / "model_index.json").get("_class_name")
    if pipeline not in UNCONDITIONAL_PIPELINES or (folder / MANIFEST).exists():
        return False
    unet = _read_json(folder / "unet" / "config.json")
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    size = unet.get("sample_size", 0)
    size = size[0] if isinstance(size, list) and size else size
    if not isinstance(size, int) or size <= 0:
        raise ModelError(f"{folder / 'unet' / 'config.json'}: no sample_size, so the image size is unknown")
    manifest = {"manifest_version": 1, "task": "generate", "conditioning": "none", "image_size": size,
                "channels": int(unet.get("out_channels", 3)), "default_sampler": "ddim",
                "prediction_type": str(scheduler.get("prediction_type", "epsilon")),
                "description": f"{pipeline} ({source or folder.name})", "source": source, "license": license}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return True


def _place(staging: Path, name: str, source: str, license: str = "", extra: dict[str, Any] | None = None,
           settings: Settings | None = None) -> Path:
    """Write the source record into `staging` and rename it to `<user models>/<name>` (atomic)."""
    target = staging.parent / name
    if target.exists():
        raise ModelError(f"{target}: already exists (remove it first, or choose another name)")
    record = {"source": source, "license": license, **(extra or {})}
    (staging / SOURCE_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    os.replace(staging, target)
    _ensure_user_dir(settings)
    return target


def check_name(name: str) -> str:
    """A model's folder name: one plain path component (no separators, not hidden)."""
    if not name or name.startswith(".") or any(c in name for c in '/\\:*?"<>|') or name != name.strip():
        raise ModelError(f"{name!r} is not a usable model folder name")
    return name


def _staging(root: Path, name: str) -> Path:
    return root / f".{name}.{secrets.token_hex(4)}.tmp"


def import_folder(src: str | os.PathLike[str], name: str | None = None, settings: Settings | None = None) -> Path:
    """Copy a checkpoint folder or a diffusers Stable Diffusion folder into the user models folder."""
    src_path = Path(src).expanduser().resolve()
    if not src_path.is_dir():
        raise ModelError(f"{src_path}: not a folder")
    _validate(src_path)
    root = user_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    name = check_name(name or src_path.name)
    if (root / name).exists():
        raise ModelError(f"{root / name}: already exists (remove it first, or choose another name)")
    staging = _staging(root, name)
    try:
        shutil.copytree(src_path, staging, ignore=shutil.ignore_patterns(".*.tmp", "*.part"))
        source, license = f"imported from {src_path}", _card_license(src_path)
        if adopt_pipeline(staging, source, license):
            _validate(staging)
        else:
            license = describe(src_path).license
        return _place(staging, name, source, license, settings=settings)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_extract(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        for member in z.namelist():
            dest = (into / member).resolve()
            if not dest.is_relative_to(into.resolve()):
                raise ModelError(f"{archive}: refuses to extract {member!r} outside the model folder")
        z.extractall(into)


def _model_root(folder: Path) -> Path:
    """The folder itself, or its only sub-folder (archives often wrap the checkpoint in one)."""
    subs = [p for p in folder.iterdir() if not p.name.startswith(".") and not p.name.startswith("__MACOSX")]
    marked = (folder / MANIFEST).is_file() or (folder / "model_index.json").is_file()
    if marked or len(subs) != 1 or not subs[0].is_dir():
        return folder
    return subs[0]


def import_file(src: str | os.PathLike[str], name: str | None = None, settings: Settings | None = None,
                source: str | None = None, license: str = "", extra: dict[str, Any] | None = None) -> Path:
    """Import one file: a `.zip` of a model folder, a `diffedit.json` (its folder is imported), or a
    weights file with `diffedit.json` and the UNet's `config.json` beside it (single-file layout)."""
    path = Path(src).expanduser().resolve()
    if not path.is_file():
        raise ModelError(f"{path}: not a file")
    if path.name == MANIFEST:
        return import_folder(path.parent, name, settings)
    root = user_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    stem = check_name(name or path.name.split(".")[0])
    if (root / stem).exists():
        raise ModelError(f"{root / stem}: already exists (remove it first, or choose another name)")
    staging = _staging(root, stem)
    try:
        if zipfile.is_zipfile(path):
            unpacked = staging.with_name(staging.name + ".unzip")
            try:
                unpacked.mkdir()
                _safe_extract(path, unpacked)
                model = _model_root(unpacked)
                _validate(model)
                os.replace(model, staging)
            finally:
                shutil.rmtree(unpacked, ignore_errors=True)
        elif path.suffix in WEIGHT_SUFFIXES:
            manifest, config = path.parent / MANIFEST, path.parent / "config.json"
            if not (manifest.is_file() and config.is_file()):
                raise ModelError(f"{path}: a weights file alone says nothing about its model; put {MANIFEST} and the "
                                 "UNet's config.json beside it, or import its whole folder")
            staging.mkdir()
            for f in (path, manifest, config):
                shutil.copy2(f, staging / f.name)
            _validate(staging)
        else:
            raise ModelError(f"{path}: not a model file (.zip, {MANIFEST} or {', '.join(WEIGHT_SUFFIXES)})")
        return _place(staging, stem, source or f"imported from {path}", license, extra, settings)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove(name_or_path: str, settings: Settings | None = None) -> str:
    """Delete a model in the user models folder, or forget a model folder listed in settings.

    Returns what was done, in words. Models elsewhere are never deleted (ModelError says so).
    """
    if remove_folder(name_or_path, settings):
        return f"removed model folder {name_or_path} from settings (its files are kept)"
    info = find(name_or_path)
    if not info.managed:
        raise ModelError(f"{info.path}: not in the user models folder ({user_models_dir()}), so it is not deleted; "
                         "remove its model folder from settings, or delete it yourself")
    doomed = info.path.with_name(f".{info.path.name}.{secrets.token_hex(4)}.removed")
    os.replace(info.path, doomed)  # gone from listings at once, even if deleting takes a while
    shutil.rmtree(doomed, ignore_errors=True)
    return f"deleted {info.path}"


# ------------------------------------------------------------------------------------- catalogue
def load_catalogue(path: str | os.PathLike[str] | None = None) -> list[CatalogueItem]:
    if path is None:
        text = resources.files("diffedit").joinpath("model_catalogue.json").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    known = set(CatalogueItem.__dataclass_fields__)
    return [CatalogueItem(**{k: v for k, v in item.items() if k in known}) for item in json.loads(text)["models"]]


def catalogue_item(name: str, path: str | os.PathLike[str] | None = None) -> CatalogueItem:
    for item in load_catalogue(path):
        if item.name == name:
            return item
    names = ", ".join(i.name for i in load_catalogue(path))
    raise ModelError(f"{name!r} is not in the catalogue (known: {names}); give a URL with --sha256 instead")


def fetch_url(url: str, sha256: str, name: str | None = None, progress: Progress | None = None,
              cancel: CancelToken | None = None, license: str = "", settings: Settings | None = None) -> Path:
    """Download a model file (a .zip of a model folder, or a weights file with its folder's files) with a
    pinned SHA-256 into the downloads folder, resumably, then import it into the user models folder."""
    file_name = url.split("?")[0].split("#")[0].rstrip("/").rsplit("/", 1)[-1]
    file_name = "".join(c for c in file_name if c.isalnum() or c in "-_.").lstrip(".") or "model.zip"
    downloads = user_models_dir() / ".downloads"
    stem = check_name(name or file_name.split(".")[0])
    if (user_models_dir() / stem).exists():  # say so before downloading, not after
        raise ModelError(f"{user_models_dir() / stem}: already exists (remove it first, or choose another name)")
    path = download(url, downloads / file_name, sha256, progress, cancel)
    try:
        return import_file(path, name, settings, source=url, license=license, extra={"sha256": sha256})
    finally:
        path.unlink(missing_ok=True)  # verified and imported (or useless): the download itself goes


def fetch_item(item: CatalogueItem, name: str | None = None, progress: Progress | None = None,
               cancel: CancelToken | None = None, settings: Settings | None = None,
               warn: Callable[[str], None] | None = None) -> Path:
    """Fetch a catalogue model (Hugging Face repository or pinned URL) into the user models folder.

    Both kinds report progress, stop mid-file on `cancel` (DownloadCancelled) and resume on the next call."""
    if item.source == "url":
        if not item.url or not item.sha256:
            raise ModelError(f"{item.name}: the catalogue gives no URL and SHA-256")
        return fetch_url(item.url, item.sha256, name or item.name, progress, cancel, item.license, settings)
    if item.source != "hf" or not item.repo:
        raise ModelError(f"{item.name}: unknown source {item.source!r}")
    if item.revision is None and warn:
        warn(f"{item.name}: no revision is pinned, so the repository's current main branch is fetched")
    root = user_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = check_name(name or item.name)
    if (root / target).exists():
        raise ModelError(f"{root / target}: already exists (remove it first, or choose another name)")
    staging = root / f".{target}.hf"
    if staging.exists() and not part_path(staging).exists():  # fetched but not placed last time:
        os.replace(staging, part_path(staging))  # its files are checked again, not downloaded again
    _, commit = fetch_hf_repo(item.repo, staging, item.revision, item.allow_patterns, progress, cancel)
    adopt_pipeline(staging, f"hf:{item.repo}@{commit}", item.license)
    return _place(staging, target, f"hf:{item.repo}@{commit or item.revision or 'main'}", item.license,
                  {"repo": item.repo, "revision": commit}, settings)
