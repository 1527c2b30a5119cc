"""Downloads the user asks for: a URL with a pinned SHA-256, or a Hugging Face repository.

`download` is resumable (`<target>.part` grows across attempts and is resumed with an HTTP Range
request), reports progress through a callback, stops between chunks when its `CancelToken` is
cancelled, checks the SHA-256 before anything is used, and renames the checked file into place, so
the target is whole or absent. A file whose hash differs is deleted: nothing is left behind. A
connection that drops, or a cancel, keeps the `.part` file, and running again resumes it.

`fetch_hf_repo` asks `huggingface_hub` (imported only then; it is optional) for the repository's
file list with sizes and hashes, and fetches each file with the same downloader from the hub's
`resolve` URL, so a Hugging Face download cancels mid-file, resumes and is verified like a URL.
Nothing here downloads at import time, and this module never imports Qt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffedit.tasks.cancel import CancelToken

__all__ = ["CancelToken", "DownloadCancelled", "DownloadError", "HubFile", "Progress", "check_sha256", "download",
           "fetch_hf_repo", "file_sha256", "hf_repo_files"]

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None when unknown)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_KINDS = {"sha256": "SHA-256", "git-sha1": "git blob id"}  # how a file is checked, in words
_FETCH_STATE = ".diffedit-fetch.json"  # in a repository's staging folder: which commit its files belong to


class DownloadError(RuntimeError):
    """A download failed; the message says why and whether running again resumes it."""


class DownloadCancelled(DownloadError):
    """The user cancelled; the `.part` file is kept so the next attempt resumes."""


def _digest(path: Path, kind: str = "sha256", cancel: CancelToken | None = None) -> str:
    """SHA-256 of the bytes, or git's blob id (what the hub lists for files kept in git rather than
    LFS). Checks `cancel` per MiB, so verifying a large file does not hold up a cancel."""
    if kind == "sha256":
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(usedforsecurity=False)  # git's object id, compared with the hub's blob id
        digest.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            if cancel is not None and cancel.cancelled:
                raise DownloadCancelled(f"{path.name}: cancelled while checking it")
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    return _digest(Path(path))


def check_sha256(value: str) -> str:
    """The SHA-256 in lower case; ValueError unless it is 64 hex digits."""
    value = value.strip().lower()
    if not _HEX64.match(value):
        raise ValueError(f"a SHA-256 must be 64 hex digits, not {value!r}")
    return value


def part_path(target: str | os.PathLike[str]) -> Path:
    target = Path(target)
    return target.with_name(target.name + ".part")


def _stop_if_cancelled(cancel: CancelToken | None, what: str) -> None:
    if cancel is not None and cancel.cancelled:
        raise DownloadCancelled(f"{what}: cancelled")


def download(url: str, target: str | os.PathLike[str], sha256: str, progress: Progress | None = None,
             cancel: CancelToken | None = None, timeout: float = 30.0, chunk: int = 1 << 16,
             headers: dict[str, str] | None = None) -> Path:
    """Fetch `url` to `target` unless it is already there with the right hash; resume a partial file.

    Raises DownloadError (DownloadCancelled when `cancel` was cancelled); on any error the target is
    untouched. Only http(s) URLs are accepted. `headers` (a token) go to `url`'s host only, never to
    another host it redirects to.
    """
    sha256 = check_sha256(sha256)
    return _fetch_file(url, Path(target), "sha256", sha256, None, progress, cancel, timeout, chunk, headers or {})


def _fetch_file(url: str, target: Path, kind: str, digest: str, size: int | None, progress: Progress | None,
                cancel: CancelToken | None, timeout: float, chunk: int, headers: dict[str, str]) -> Path:
    """`download` for any check the hub lists (SHA-256 or git blob id), with the size when it is known."""
    if not url.lower().startswith(("http://", "https://")):
        raise DownloadError(f"{url}: only http:// and https:// URLs can be downloaded")
    if target.is_file() and (size is None or target.stat().st_size == size) \
            and _digest(target, kind, cancel) == digest:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:  # longer than the file can be: not a prefix of it
        part.unlink()
        have = 0
    _stop_if_cancelled(cancel, url)
    if size is None or have < size:  # a part file of the known size is only checked
        _request(url, part, have, headers, progress, cancel, timeout, chunk)
    actual = _digest(part, kind, cancel)
    if actual != digest:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise DownloadError(f"{url}: {_KINDS[kind]} mismatch (expected {digest}, got {actual}); "
                            "the download was deleted")
    os.replace(part, target)
    return target


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, sending the caller's own headers again only when the host stays the same:
    the hub sends large files to a CDN through a signed URL, and the CDN must not see the token."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        old, nxt = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if new is not None and (old.scheme, old.netloc) == (nxt.scheme, nxt.netloc):
            for key, value in req.unredirected_hdrs.items():
                if key.lower() != "host":
                    new.add_unredirected_header(key, value)
        return new


def _request(url: str, part: Path, have: int, headers: dict[str, str], progress: Progress | None,
             cancel: CancelToken | None, timeout: float, chunk: int) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "diffedit"})
    for key, value in headers.items():
        request.add_unredirected_header(key, value)  # kept on same-host redirects by _SameHostRedirects
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        if headers:
            response = urllib.request.build_opener(_SameHostRedirects()).open(request, timeout=timeout)
        else:
            response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: the part file is already complete
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        return
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from exc
    with response:
        _receive(url, response, part, have, progress, cancel, chunk)


def _receive(url: str, response: Any, part: Path, have: int, progress: Progress | None,
             cancel: CancelToken | None, chunk: int) -> None:
    resumed = getattr(response, "status", 200) == 206
    if not resumed:
        have = 0  # the server ignored Range: start again
    length = response.headers.get("Content-Length")
    total = have + int(length) if length is not None else None
    done = have
    with open(part, "ab" if resumed else "wb") as f:
        if progress:
            progress(done, total)
        while True:
            if cancel is not None and cancel.cancelled:
                raise DownloadCancelled(f"{url}: cancelled after {done} bytes; {part.name} is kept to resume")
            try:
                data = response.read(chunk)
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


# ------------------------------------------------------------------------------------ Hugging Face
@dataclass(frozen=True)
class HubFile:
    """One repository file as the hub lists it: LFS files with the SHA-256 of their content, files
    kept in git with their git blob id; either way the download can be checked before it is used."""

    path: str  # relative to the repository root, with forward slashes
    size: int | None
    kind: str  # "sha256" | "git-sha1"
    digest: str


def _safe_repo_path(name: str) -> str:
    """The hub's file name, refused when it could land outside the download folder."""
    if not name or "\\" in name or name.startswith("/") or any(p in ("", ".", "..") for p in name.split("/")):
        raise DownloadError(f"{name!r}: not a usable file name in a repository")
    return name


def hf_repo_files(repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None,
                  token: str | None = None, endpoint: str | None = None) -> tuple[str, list[HubFile]]:
    """(commit, the files to fetch, sorted) from the hub's file metadata for `revision` (None: main).

    Needs `huggingface_hub`. A file the hub lists without a hash is refused rather than fetched unchecked.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    info = HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, files_metadata=True, token=token)
    files: list[HubFile] = []
    for sibling in filter_repo_objects(info.siblings or [], allow_patterns=allow_patterns, key=lambda s: s.rfilename):
        path = _safe_repo_path(sibling.rfilename)
        lfs_sha = str(sibling.lfs.sha256).lower() if sibling.lfs is not None and sibling.lfs.sha256 else ""
        blob = str(sibling.blob_id or "").lower()
        if _HEX64.match(lfs_sha):
            files.append(HubFile(path, int(sibling.lfs.size), "sha256", lfs_sha))  # type: ignore[union-attr]
        elif sibling.lfs is None and _HEX40.match(blob):
            files.append(HubFile(path, sibling.size, "git-sha1", blob))
        else:
            raise DownloadError(f"{repo_id}: the hub lists no usable hash for {path}, so it cannot be checked")
    if not files:
        raise DownloadError(f"{repo_id}: no files to fetch" + (f" match {allow_patterns}" if allow_patterns else ""))
    return str(info.sha or revision or "main"), sorted(files, key=lambda f: f.path)


def _resolve_url(endpoint: str, repo_id: str, commit: str, path: str) -> str:
    """What `huggingface_hub.hf_hub_url` builds, but always on `endpoint` (hf_hub_url keeps its own
    base when the endpoint was changed after import)."""
    quote = urllib.parse.quote
    return f"{endpoint}/{repo_id}/resolve/{quote(commit, safe='')}/{quote(path)}"


def _open_staging(staging: Path, repo_id: str, commit: str) -> None:
    """Create or reuse the staging folder. `.part` files of another commit (main moved on since the
    last attempt) are dropped: they would resume other bytes. Whole files stay; each is checked again."""
    staging.mkdir(parents=True, exist_ok=True)
    state = staging / _FETCH_STATE
    try:
        before = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = None
    wanted = {"repo": repo_id, "commit": commit}
    if before != wanted:
        for part in staging.rglob("*.part"):
            if part.is_file():
                part.unlink()
        state.write_text(json.dumps(wanted), encoding="utf-8")


def _tidy(staging: Path, files: list[HubFile]) -> None:
    """Leave only the repository's files: no fetch record, stale parts or old caches get renamed in."""
    keep = {f.path for f in files}
    found = sorted(staging.rglob("*"), key=lambda p: len(p.parts), reverse=True)  # children first
    for path in found:
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty
        elif path.relative_to(staging).as_posix() not in keep:
            path.unlink()


def fetch_hf_repo(repo_id: str, dest: str | os.PathLike[str], revision: str | None = None,
                  allow_patterns: list[str] | None = None, progress: Progress | None = None,
                  cancel: CancelToken | None = None, token: str | None = None, endpoint: str | None = None,
                  timeout: float = 30.0, chunk: int = 1 << 16) -> tuple[Path, str]:
    """Download a Hugging Face repository into `dest` (only when the user asks); returns (dest, the
    commit fetched).

    Files go to `<dest>.part/` one by one through the resumable downloader (their own `.part` files
    resume; a cancel stops mid-file), each is checked against the hub's SHA-256 (LFS) or git blob id,
    then the folder is renamed into place, so `dest` is whole or absent. `token` (default: the user's
    Hugging Face token, if any) is sent to the hub only; `progress` sees the bytes of all files.
    """
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError:
        msg = "downloading from Hugging Face needs huggingface_hub: pip install huggingface_hub"
        raise DownloadError(msg) from None
    dest = Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists (remove it first)")
    _stop_if_cancelled(cancel, repo_id)
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    try:
        token = token or huggingface_hub.get_token()
        commit, files = hf_repo_files(repo_id, revision, allow_patterns, token, endpoint)
    except DownloadError:
        raise
    except Exception as exc:  # network, authentication, unknown repository, offline mode...
        raise DownloadError(f"{repo_id}: {' '.join(str(exc).split())}") from exc
    staging = part_path(dest)
    _open_staging(staging, repo_id, commit)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    sizes = [f.size for f in files]
    total = None if None in sizes else sum(s or 0 for s in sizes)
    done = 0
    for f in files:
        report = None if progress is None else (lambda d, _t, base=done: progress(base + d, total))
        url = _resolve_url(endpoint, repo_id, commit, f.path)
        path = _fetch_file(url, staging / f.path, f.kind, f.digest, f.size, report, cancel, timeout, chunk, headers)
        done += path.stat().st_size
        if progress:
            progress(done, total)
    _tidy(staging, files)
    os.replace(staging, dest)
    return dest, commit
