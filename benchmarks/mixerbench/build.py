"""``build``: evaluate every MixerBench architecture through ``nas search`` (grid strategy, no early stopping).

The build is one search named ``mixerbench`` (``--name``) in the given store, run in this process
by the ``nas`` CLI itself, so trials take exactly the path of any search: Ray Tune, the trial
runner, the store, and reuse of results already stored for the same recipe and device kind
(those cost nothing).  ``--limit N`` caps the trials trained (the budget ``Ntrials``; the space's
seeds come first, then the grid order); ``--resume`` continues a build that was interrupted or
limited, up to ``--limit`` (default: the whole space).
"""
from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import nas.cli
from nas.errors import UsageError
from nas.search.prepare import default_artifacts_dir
from nas.formatting import format_duration
from nas.search.recorder import INTERRUPTED_ERROR
from nas.store import Store, TrialStatus, normalise_url, open_store
from nas.store.engine import sqlite_path
from search_spaces import get_space

from benchmarks.mixerbench import SPACE
from benchmarks.mixerbench.runs import append_run, code_revision

__all__ = ["BuildRequest", "build", "search_argv"]

PROGRESS_EVERY_S = 60.0


@dataclass(frozen=True)
class BuildRequest:
    db: str
    name: str
    limit: int | None = None
    resume: bool = False
    dataset: str | None = None  # None: the proxy recipe's default task (the demo's)
    epochs: int | None = None
    subset: int | None = None
    cpus_per_trial: float = 1.0
    max_concurrent: int = 2
    # CPU time of the measuring thread: a table built beside other jobs still ranks speeds correctly
    clock: str = "thread"
    artifacts: str | None = None
    quiet: bool = False

    @property
    def artifacts_dir(self) -> Path:
        return Path(self.artifacts) if self.artifacts else default_artifacts_dir(normalise_url(self.db))


def search_argv(request: BuildRequest, budget_trials: int) -> list[str]:
    """The ``nas`` command line of the build (printed, then run in-process)."""
    argv = ["search", "--resume", request.name] if request.resume else \
        ["search", "--space", SPACE, "--strategy", "grid", "--no-asha", "--name", request.name, "--clock", request.clock]
    argv += ["--budget", f"{budget_trials}trials", "--db", request.db, "--artifacts", str(request.artifacts_dir),
             "--cpus-per-trial", f"{request.cpus_per_trial:g}", "--max-concurrent", str(request.max_concurrent)]
    for flag, value in (("--dataset", request.dataset), ("--epochs", request.epochs), ("--subset", request.subset)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + ["--quiet"]  # its per-event progress lines re-read every trial: O(n^2) over a build


def build(request: BuildRequest, out: TextIO = sys.stdout) -> int:
    """Run (or continue) the build search; returns the ``nas search`` exit code (0: budget or space done)."""
    if request.limit is not None and request.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {request.limit}")
    space_size = get_space(SPACE).size()
    _check_build_exists(request)
    argv = search_argv(request, request.limit or space_size)
    print(f"MixerBench build ({space_size} architectures): nas {' '.join(argv)}", file=out, flush=True)
    revision = code_revision()
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    with _ProgressLines(request, request.limit or space_size, None if request.quiet else out):
        code = nas.cli.main(argv)
    wall_s = time.monotonic() - clock
    if code != 2:  # 2: refused before anything ran
        append_run(request.artifacts_dir / request.name, {
            "started": started.isoformat(timespec="seconds"), "wall_s": round(wall_s, 1), **revision,
            "command": f"nas {' '.join(argv)}", "exit_code": code, "trained": _trained(request)})
    return code


class _ProgressLines:
    """Every ``PROGRESS_EVERY_S``: architectures done, trials trained, rate and time left (read from the store)."""

    def __init__(self, request: BuildRequest, target: int, out: TextIO | None):
        self.request, self.target, self.out = request, target, out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mixerbench-progress", daemon=True)

    def __enter__(self) -> "_ProgressLines":
        if self.out is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        started, trained_before = time.monotonic(), None
        while not self._stop.wait(PROGRESS_EVERY_S):
            try:
                done, trained = _counts(self.request)
            except Exception:  # noqa: BLE001 - a progress line must never stop a build (store busy, not created yet)
                continue
            trained_before = trained if trained_before is None else trained_before
            elapsed = time.monotonic() - started
            rate = (trained - trained_before) / (elapsed - PROGRESS_EVERY_S) if elapsed > PROGRESS_EVERY_S else 0.0
            left = f", about {format_duration((self.target - trained) / rate)} left" if rate > 0 else ""
            print(f"[{format_duration(elapsed)}] {done} architectures done, {trained}/{self.target} trained"
                  f"{f', {rate * 60:.1f}/min' if rate > 0 else ''}{left}", file=self.out, flush=True)


def _counts(request: BuildRequest) -> tuple[int, int]:
    """(architectures with a finished trial, trials trained) of the build so far."""
    store = open_store(request.db)
    try:
        trials = store.trials(search=request.name)
    finally:
        store.close()
    finished = [t for t in trials if isinstance(t.status, TrialStatus) and t.status.finished
                and t.error != INTERRUPTED_ERROR]  # re-run on resume; the trials budget does not count them
    return len({t.arch_hash for t in finished}), sum(not t.reused for t in finished)


def _check_build_exists(request: BuildRequest) -> None:
    store = _existing_store(request.db)
    exists = store is not None and store.get_search(request.name) is not None
    if store is not None:
        store.close()
    if exists and not request.resume:
        raise UsageError(f"a MixerBench build {request.name!r} already exists in {request.db}; continue it with "
                         f"--resume (or start another with --name; stored results are reused)")
    if request.resume and not exists:
        raise UsageError(f"no MixerBench build {request.name!r} in {request.db} to resume; start one without --resume")


def _existing_store(db: str) -> Store | None:
    path = sqlite_path(normalise_url(db))
    if path is not None and not path.exists():
        return None
    return open_store(db)


def _trained(request: BuildRequest) -> int:
    """Trials of the build trained so far (reused ones excluded)."""
    return _counts(request)[1]
