"""Where a search's files go, checked: names become directory names, and every path built from a
stored value must stay inside its root.

A search name comes from the command line or from the store, and the store is a file anyone may
hand us; a name such as ``../../victim`` (or a symlink planted at ``ARTIFACTS/<name>``) would
otherwise point the driver's clean-up (``shutil.rmtree`` of the Tune folder) and its weight
copies outside the artifacts directory.
"""
from __future__ import annotations

import re
from pathlib import Path

from nas.errors import UsageError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_search_name(name: object) -> str:
    """Search names become directory names: letters, digits, '.', '_', '-' only."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise UsageError(f"search name {name!r} must be 1-100 letters, digits, '.', '_' or '-' "
                         f"(starting with a letter or digit)")
    return name


def inside(root: Path, *parts: str, what: str = "path") -> Path:
    """``root/parts`` with symlinks resolved; UsageError unless it lies strictly inside ``root``."""
    base = Path(root).expanduser().resolve()
    path = base.joinpath(*parts).resolve()
    if base not in path.parents:
        raise UsageError(f"{what} {str(path)!r} is outside {str(base)!r} (built from {'/'.join(parts)!r}); "
                         f"refusing to write or delete there")
    return path


def search_dir(artifacts_dir: Path, name: str) -> Path:
    """``ARTIFACTS/<name>``: the search's weights (and its Tune folder, ``tune/``)."""
    return inside(artifacts_dir, check_search_name(name), what="search directory")


def tune_dir(artifacts_dir: Path, name: str) -> Path:
    """``ARTIFACTS/<name>/tune``: Tune's scratch folder, deleted before and after each run."""
    return inside(artifacts_dir, check_search_name(name), "tune", what="Tune directory")
