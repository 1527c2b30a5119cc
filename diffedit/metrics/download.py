"""A resumable, verified download: `<target>.part` grows across attempts, then is checked and renamed.

The SHA-256 is pinned by the caller; a file that does not match is deleted and refused, so a bad or
tampered download can never be used. The final rename is atomic: the target is whole or absent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


class DownloadError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, target: str | os.PathLike[str], sha256: str, progress: Progress | None = None,
             timeout: float = 30.0, chunk: int = 1 << 16) -> Path:
    """Fetch `url` to `target` unless it is already there with the right hash; resume a partial file."""
    target = Path(target)
    if target.is_file() and _sha256(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
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
            resumed = response.status == 206
            if not resumed:
                have = 0  # the server ignored Range: start again
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as f:
                done = have
                if progress:
                    progress(done, total)
                while True:
                    try:
                        data = response.read(chunk)
                    except OSError as exc:
                        msg = f"{url}: interrupted after {done} bytes ({exc}); run again to resume"
                        raise DownloadError(msg) from exc
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
    actual = _sha256(part)
    if actual != sha256:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise DownloadError(f"{url}: SHA-256 mismatch (expected {sha256}, got {actual}); the file was deleted")
    os.replace(part, target)
    return target
