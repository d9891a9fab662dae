"""What the store cannot hold about a build: which code revision ran it, when, and for how long.

Each ``build`` run appends one record to ``<artifacts>/<search>/build_runs.json`` (beside the
trials' weights); ``export`` copies them into the table (``build.runs``, ``code_revision``).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["RUNS_FILE", "read_runs", "append_run", "code_revision"]

RUNS_FILE = "build_runs.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Packages whose code decides a trial's result; a build from a checkout with edits there is flagged.
RESULT_CODE = ("mixers", "backbones", "search_spaces", "nas")


def read_runs(directory: Path) -> list[dict[str, Any]]:
    """The recorded runs, oldest first; none when the file is missing or unreadable."""
    try:
        runs = json.loads((Path(directory) / RUNS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def append_run(directory: Path, run: dict[str, Any]) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RUNS_FILE).write_text(json.dumps([*read_runs(directory), run], indent=1) + "\n")


def code_revision() -> dict[str, Any]:
    """``{"revision": git HEAD or None, "modified": uncommitted edits to the result code or None}``."""
    head = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *RESULT_CODE)
    return {"revision": head, "modified": None if status is None else bool(status)}


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
