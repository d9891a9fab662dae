"""Fetch and unpack the CIFAR archives: resumable, checksummed, and never trusted half-written.

Why not torchvision's ``download=True``: it ends in a traceback when the host is unreachable,
cannot resume, and leaves a truncated archive behind.  Here an archive is streamed into
``<data_dir>/<archive>.part`` (an interrupted download resumes with an HTTP ``Range`` request),
its MD5 is checked against torchvision's published value, and only then is it renamed into place
and unpacked (into a temporary directory that is renamed in one step).  Every failure is a
one-line ``UsageError`` naming the dataset, the URL and the manual alternative.

``MIXER_NAS_CIFAR_URL`` (environment) replaces ``CIFAR_BASE_URL``: a mirror directory that holds
``cifar-10-python.tar.gz`` and ``cifar-100-python.tar.gz``, e.g. ``http://mirror.local/cifar/``.
Tests point it at a local server; a mirror serves the same files, so the MD5s stay.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from nas.errors import UsageError

__all__ = ["CIFAR_ARCHIVES", "CIFAR_BASE_URL", "CifarArchive", "URL_ENV_VAR", "DownloadProgress",
           "archive_url", "download_file", "manual_layout", "prepare_cifar"]

CIFAR_BASE_URL = "https://www.cs.toronto.edu/~kriz/"
URL_ENV_VAR = "MIXER_NAS_CIFAR_URL"
CHUNK_BYTES = 1 << 16
TIMEOUT_S = 30.0  # per socket operation: a stalled server is an error, not a hang


@dataclass(frozen=True)
class CifarArchive:
    """One dataset's archive and the directory torchvision expects after unpacking it."""

    dataset: str
    filename: str
    md5: str
    folder: str
    members: tuple[str, ...]


CIFAR_ARCHIVES: dict[str, CifarArchive] = {
    "cifar10": CifarArchive(
        "cifar10", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
         "batches.meta")),
    "cifar100": CifarArchive(
        "cifar100", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python",
        ("train", "test", "meta")),
}


def archive_url(archive: CifarArchive) -> str:
    """The URL the archive is fetched from: ``$MIXER_NAS_CIFAR_URL`` or ``CIFAR_BASE_URL``, plus its name."""
    base = os.environ.get(URL_ENV_VAR) or CIFAR_BASE_URL
    return base.rstrip("/") + "/" + archive.filename


def manual_layout(archive: CifarArchive, root: Path) -> str:
    """What to put under the data directory by hand (one line, for error messages)."""
    return (f"put {archive.filename} (MD5 {archive.md5}) or its unpacked {archive.folder}/ "
            f"({', '.join(archive.members)}) in {root} (or point --data-dir at a directory that holds them)")


def prepare_cifar(dataset: str, root: Path, *, download: bool, progress_stream: TextIO | None = None) -> None:
    """Make ``root/<folder>`` hold the unpacked dataset, if it can be done.

    Already unpacked: nothing to do.  A verified archive in ``root``: unpack it (no network).
    Otherwise, with ``download``: fetch, verify, unpack.  Without ``download`` nothing happens and
    the caller's loader reports the missing files.
    """
    archive = CIFAR_ARCHIVES[dataset]
    target = root / archive.folder
    if target.exists():
        missing = _missing_members(target, archive)
        if missing:
            raise UsageError(f"{dataset}: {target} is incomplete (missing {', '.join(missing)}); remove it "
                             f"and rerun with --download, or {manual_layout(archive, root)}")
        return
    archive_path = root / archive.filename
    if archive_path.is_file() and _md5_of(archive_path) == archive.md5:
        _unpack(archive, archive_path, root)
        return
    if not download:
        return
    url = archive_url(archive)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{dataset}: cannot create the data directory {root}: {exc.strerror or exc}") from exc
    download_file(url, archive_path, md5=archive.md5, label=dataset,
                  alternative=manual_layout(archive, root), progress_stream=progress_stream)
    _unpack(archive, archive_path, root)


def download_file(url: str, dest: Path, *, md5: str, label: str, alternative: str,
                  progress_stream: TextIO | None = None) -> None:
    """Fetch ``url`` to ``dest`` through ``dest.part``; ``dest`` appears only with the right MD5.

    A ``.part`` left by an interrupted run is resumed with a ``Range`` request.  If a resumed file
    fails the checksum (a stale part from another file), it is deleted and fetched once more from
    the start; a fresh download that fails the checksum is deleted and reported.
    """
    part = dest.with_name(dest.name + ".part")
    stream = sys.stderr if progress_stream is None else progress_stream
    for _attempt in range(2):
        resumed_from = _part_size(part)
        try:
            _fetch_into(url, part, label=label, stream=stream)
        except _WriteFailed as exc:  # the part stays: it is only trusted after the checksum
            raise UsageError(f"{label}: download from {url} stopped: {exc}; fix that and rerun with "
                             f"--download to resume, or fetch it another way and {alternative}") from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            kept = _part_size(part)
            resume = (f"rerun with --download to resume the {_format_bytes(kept)} kept in {part}, or "
                      if kept else "")
            raise UsageError(f"{label}: download from {url} failed ({_describe(exc)}); {resume}"
                             f"fetch it another way and {alternative}") from exc
        try:
            actual = _md5_of(part)
            if actual == md5:
                os.replace(part, dest)
                return
        except OSError as exc:
            raise UsageError(f"{label}: cannot verify or rename {part} ({_describe(exc)}); "
                             f"fetch it another way and {alternative}") from exc
        part.unlink(missing_ok=True)
        if resumed_from == 0:
            break
    raise UsageError(f"{label}: the file downloaded from {url} has MD5 {actual}, expected {md5} (deleted); "
                     f"check the URL or mirror, or fetch it another way and {alternative}")


class DownloadProgress:
    """Bytes so far, total and rate on one line: redrawn in place on a terminal, every few seconds otherwise."""

    def __init__(self, label: str, stream: TextIO, *, start_bytes: int, total: int | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.stream, self.total, self.clock = label, stream, total, clock
        self.start_bytes = self.done = start_bytes
        self.started = self.last_shown = clock()
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.every_s = 0.5 if self.interactive else 5.0

    def update(self, done: int) -> None:
        self.done = done
        if self.clock() - self.last_shown >= self.every_s:
            self._show(end="\r" if self.interactive else "\n")

    def finish(self) -> None:
        self._show(end="\n")

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = (self.done - self.start_bytes) / elapsed
        size = (f"{_format_bytes(self.done)} / {_format_bytes(self.total)} ({self.done / self.total:.0%})"
                if self.total else _format_bytes(self.done))
        resumed = f", resumed at {_format_bytes(self.start_bytes)}" if self.start_bytes else ""
        return f"{self.label}: {size} at {_format_bytes(rate)}/s{resumed}"

    def _show(self, end: str) -> None:
        self.last_shown = self.clock()
        print(self.line(), end=end, file=self.stream, flush=True)


def _fetch_into(url: str, part: Path, *, label: str, stream: TextIO) -> None:
    """Append the rest of ``url`` to ``part`` (all of it if the server ignores ``Range``)."""
    offset = _part_size(part)
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after `offset`: the part is already whole
            return
        raise
    with response:
        if offset and response.status != 206:  # Range ignored: the body is the whole file
            offset = 0
        elif offset and _range_start(response.headers.get("Content-Range", "")) != offset:
            raise http.client.HTTPException(f"server answered Range bytes={offset}- with "
                                            f"Content-Range {response.headers.get('Content-Range')!r}")
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None and length.isdigit() else None
        progress = DownloadProgress(label, stream, start_bytes=offset, total=expected)
        try:
            out = open(part, "ab" if offset else "wb")
        except OSError as exc:
            raise _WriteFailed(part, exc) from exc
        with out:
            done = offset
            while chunk := response.read(CHUNK_BYTES):
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _WriteFailed(part, exc) from exc
                done += len(chunk)
                progress.update(done)
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise _WriteFailed(part, exc) from exc
        progress.finish()
    if expected is not None and done != expected:
        raise http.client.IncompleteRead(b"", expected - done)


class _WriteFailed(Exception):
    """Writing the ``.part`` file failed (disk full, permissions): a local problem, not the server's."""

    def __init__(self, part: Path, error: OSError) -> None:
        super().__init__(f"cannot write {part}: {error.strerror or error}")
        self.part, self.error = part, error


def _range_start(content_range: str) -> int | None:
    """First byte of ``Content-Range: bytes START-END/TOTAL``; None if it does not parse."""
    unit, _, spec = content_range.strip().partition(" ")
    start = spec.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _unpack(archive: CifarArchive, archive_path: Path, root: Path) -> None:
    """Unpack into a temporary sibling directory, check the members, rename into place in one step."""
    target = root / archive.folder
    scratch = Path(tempfile.mkdtemp(prefix=f".{archive.folder}.", dir=root))
    try:
        with tarfile.open(archive_path, "r:gz") as tar:
            _extract_all(tar, scratch)
        unpacked = scratch / archive.folder
        missing = _missing_members(unpacked, archive) if unpacked.is_dir() else list(archive.members)
        if missing:
            raise UsageError(f"{archive.dataset}: {archive_path} does not hold {archive.folder}/"
                             f"{{{', '.join(missing)}}}; delete it, or {manual_layout(archive, root)}")
        try:
            os.replace(unpacked, target)
        except OSError:
            if not (target.is_dir() and not _missing_members(target, archive)):  # not a concurrent twin
                raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"{archive.dataset}: cannot unpack {archive_path} into {root} ({_describe(exc)}); "
                         f"free space or fix permissions, or {manual_layout(archive, root)}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _extract_all(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract regular files and directories only, never outside ``dest``."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    for member in tar.getmembers():
        name = Path(member.name)
        if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"refusing archive member {member.name!r}")
    tar.extractall(dest)


def _missing_members(folder: Path, archive: CifarArchive) -> list[str]:
    return [name for name in archive.members if not (folder / name).is_file()]


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _part_size(part: Path) -> int:
    try:
        return part.stat().st_size
    except OSError:
        return 0


def _describe(exc: BaseException) -> str:
    """The reason in a few words: HTTP status, resolver or socket error, short read."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return _describe(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed with {_format_bytes(exc.expected)} still to come" if exc.expected else \
            "connection closed early"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def _format_bytes(count: float | None) -> str:
    if count is None:
        return "?"
    for unit in ("B", "KiB", "MiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.2f} GiB"
