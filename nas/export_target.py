"""Where an export goes: checked before anything is written, built beside the target, swapped in last.

An export first writes into a hidden sibling of ``--out`` (same directory, so the final rename
is atomic on one filesystem) and replaces the target only after every file is written.  A failed
export (missing weights, disk full, read-only directory, Ctrl-C) leaves the target as it was;
``--force`` replaces a non-empty target only with a complete new one.  A target that holds the
results database, trial weights, a search's artifacts or the working directory is refused, with
or without ``--force``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, Mapping

from nas.errors import UsageError


class ExportError(UsageError):
    """An export or load problem the user can fix."""


def check_target(out: str | Path, *, force: bool, protected: Mapping[str, Path]) -> Path:
    """The absolute target directory, or ExportError if writing it could lose something.

    ``protected`` maps a description ("the results database") to a path that must survive.
    """
    given = str(out)
    target = Path(out).expanduser().resolve()
    for what, path in protected.items():
        kept = Path(path).expanduser().resolve()
        if kept == target or target in kept.parents:
            raise ExportError(f"--out {given!r} contains {what} ({str(path)!r}); choose another directory")
    if target.exists() and not target.is_dir():
        raise ExportError(f"--out {given!r} exists and is not a directory")
    if not target.parent.is_dir():
        raise ExportError(f"cannot create --out {given!r}: {str(target.parent)!r} does not exist")
    if target.is_dir() and not force and _non_empty(target):
        raise ExportError(f"--out {given!r} exists and is not empty; pass --force to replace it")
    return target


@contextlib.contextmanager
def staged(target: Path, given: str) -> Iterator[Path]:
    """A fresh directory beside ``target``; on success it replaces ``target``, on any error it is removed."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.export-", dir=target.parent))
    except OSError as exc:
        raise ExportError(f"cannot write --out {given!r}: {_reason(exc)}") from None
    try:
        try:
            yield staging
        except OSError as exc:
            raise ExportError(f"cannot write --out {given!r}: {_reason(exc)}") from None
        _swap_in(staging, target, given)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, target: Path, given: str) -> None:
    """Rename ``staging`` to ``target``; an existing target is moved aside first and deleted only after."""
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}") if target.exists() else None
    try:
        if old is not None:
            os.rename(target, old)
        try:
            os.rename(staging, target)
        except OSError:
            if old is not None:
                os.rename(old, target)  # put the user's directory back
            raise
    except OSError as exc:
        raise ExportError(f"cannot write --out {given!r}: {_reason(exc)}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _non_empty(directory: Path) -> bool:
    try:
        return any(directory.iterdir())
    except OSError as exc:
        raise ExportError(f"cannot read --out {str(directory)!r}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc).splitlines()[0]
