"""Weights downloads go through the general downloader (diffedit.downloads): resumable through a
`<target>.part` file, SHA-256 pinned by the caller and checked before the atomic rename."""

from __future__ import annotations

from diffedit.downloads import DownloadError, Progress, download

__all__ = ["DownloadError", "Progress", "download"]
