"""Downloads the user asks for: a URL with a pinned SHA-256, or a Hugging Face repository.

`download` is resumable (`<target>.part` grows across attempts and is resumed with an HTTP Range
request), reports progress through a callback, stops between chunks when its `CancelToken` is
cancelled, checks the SHA-256 before anything is used, and renames the checked file into place, so
the target is whole or absent. A file whose hash differs is deleted: nothing is left behind. A
connection that drops keeps the `.part` file, and running again resumes it.

`fetch_hf_repo` imports `huggingface_hub` only when called (it is optional). Nothing here downloads
at import time, and this module never imports Qt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from diffedit.tasks.cancel import CancelToken

__all__ = ["CancelToken", "DownloadCancelled", "DownloadError", "Progress", "check_sha256", "download",
           "fetch_hf_repo", "file_sha256"]

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None when unknown)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(RuntimeError):
    """A download failed; the message says why and whether running again resumes it."""


class DownloadCancelled(DownloadError):
    """The user cancelled; the `.part` file is kept so the next attempt resumes."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(value: str) -> str:
    """The SHA-256 in lower case; ValueError unless it is 64 hex digits."""
    value = value.strip().lower()
    if not _HEX64.match(value):
        raise ValueError(f"a SHA-256 must be 64 hex digits, not {value!r}")
    return value


def part_path(target: str | os.PathLike[str]) -> Path:
    target = Path(target)
    return target.with_name(target.name + ".part")


def download(url: str, target: str | os.PathLike[str], sha256: str, progress: Progress | None = None,
             cancel: CancelToken | None = None, timeout: float = 30.0, chunk: int = 1 << 16) -> Path:
    """Fetch `url` to `target` unless it is already there with the right hash; resume a partial file.

    Raises DownloadError (DownloadCancelled when `cancel` was cancelled); on any error the target is
    untouched. Only http(s) URLs are accepted.
    """
    sha256 = check_sha256(sha256)
    if not url.lower().startswith(("http://", "https://")):
        raise DownloadError(f"{url}: only http:// and https:// URLs can be downloaded")
    target = Path(target)
    if target.is_file() and file_sha256(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    have = part.stat().st_size if part.is_file() else 0
    if cancel is not None and cancel.cancelled:
        raise DownloadCancelled(f"{url}: cancelled")
    request = urllib.request.Request(url, headers={"User-Agent": "diffedit"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: the part file is already complete
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        response = None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    if response is not None:
        with response:
            _receive(url, response, part, have, progress, cancel, chunk)
    actual = file_sha256(part)
    if actual != sha256:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise DownloadError(f"{url}: SHA-256 mismatch (expected {sha256}, got {actual}); the download was deleted")
    os.replace(part, target)
    return target


def _receive(url: str, response: object, part: Path, have: int, progress: Progress | None,
             cancel: CancelToken | None, chunk: int) -> None:
    resumed = getattr(response, "status", 200) == 206
    if not resumed:
        have = 0  # the server ignored Range: start again
    length = response.headers.get("Content-Length")  # type: ignore[attr-defined]
    total = have + int(length) if length is not None else None
    done = have
    with open(part, "ab" if resumed else "wb") as f:
        if progress:
            progress(done, total)
        while True:
            if cancel is not None and cancel.cancelled:
                raise DownloadCancelled(f"{url}: cancelled after {done} bytes; {part.name} is kept to resume")
            try:
                data = response.read(chunk)  # type: ignore[attr-defined]
            except OSError as exc:
                raise DownloadError(f"{url}: interrupted after {done} bytes ({exc}); run again to resume") from exc
            if not data:
                break
            f.write(data)
            done += len(data)
            if progress:
                progress(done, total)
        f.flush()
        os.fsync(f.fileno())
    if total is not None and done < total:
        raise DownloadError(f"{url}: connection closed after {done} of {total} bytes; run again to resume")


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1()  # git's object id, compared with the hub's blob_id (not for security)
    digest.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hf_expected_files(repo_id: str, revision: str | None) -> tuple[str, dict[str, tuple[str, str]]]:
    """(commit, {path: ("sha256" | "git-sha1", hex)}) from the hub's file metadata."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    files: dict[str, tuple[str, str]] = {}
    for sibling in info.siblings or []:
        if sibling.lfs is not None and getattr(sibling.lfs, "sha256", None):
            files[sibling.rfilename] = ("sha256", str(sibling.lfs.sha256).lower())
        elif sibling.blob_id:
            files[sibling.rfilename] = ("git-sha1", str(sibling.blob_id).lower())
    return str(info.sha or revision or ""), files


def verify_snapshot(folder: Path, expected: dict[str, tuple[str, str]]) -> None:
    """Every downloaded file must match the hub's hash (weights: SHA-256; small files: git object id)."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts):
        rel = path.relative_to(folder).as_posix()
        if rel not in expected:
            raise DownloadError(f"{rel}: not a file of the repository")
        kind, want = expected[rel]
        got = file_sha256(path) if kind == "sha256" else _git_blob_sha1(path)
        if got != want:
            path.unlink()
            raise DownloadError(f"{rel}: {kind} mismatch (expected {want}, got {got}); the file was deleted, "
                                "run again to fetch it again")


def fetch_hf_repo(repo_id: str, dest: str | os.PathLike[str], revision: str | None = None,
                  allow_patterns: list[str] | None = None) -> tuple[Path, str]:
    """Download a Hugging Face repository snapshot into `dest` (only when the user asks); returns
    (dest, the commit fetched).

    The snapshot goes to `<dest>.part` (files already there are kept, so a rerun resumes), every file
    is checked against the hub's hashes for that commit, then the folder is renamed into place.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        msg = "downloading from Hugging Face needs huggingface_hub: pip install huggingface_hub"
        raise DownloadError(msg) from None
    dest = Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists (remove it first)")
    staging = part_path(dest)
    try:
        commit, expected = hf_expected_files(repo_id, revision)
        snapshot_download(repo_id=repo_id, revision=commit or revision, local_dir=str(staging),
                          allow_patterns=allow_patterns)
    except Exception as exc:  # network, authentication, unknown repository...
        raise DownloadError(f"{repo_id}: {' '.join(str(exc).split())}; run again to resume") from exc
    verify_snapshot(staging, expected)
    import shutil

    shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's own bookkeeping
    os.replace(staging, dest)
    return dest, commit
