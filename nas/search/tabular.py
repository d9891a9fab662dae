"""Test-only trial mode: answer each trial from a tabular benchmark instead of training it.

It lets the real driver (``nas search``: Tune, the searcher, the scheduler, the budget, the store
callback, the device locks) run thousands of trials on a simulated pool of fake GPUs on one CPU
machine (``benchmarks.scale``).  Two environment variables, read by the trial processes (a local
Ray instance passes the driver's environment on; a simulated cluster gets it where it starts):

* ``MIXER_NAS_TABULAR=REPLAY.sqlite``: a replay file, written by ``write_replay`` from a
  ``nas.bench.TabularEvaluator`` (a MixerBench table under one set of measurement settings).
  ``nas.search.trainable`` then runs ``ReplayBook.run_trial`` instead of ``run_trial``: the same
  reports the recorded trial sent (its measurement, then each epoch; the recorded error where it
  failed), no weights.  A search whose measurement settings differ from the file's fails its
  trials with a message naming both.
* ``MIXER_NAS_TIME_SCALE=0.001`` (default 0): before each report the trial sleeps its recorded
  device-seconds times this, holding its (fake) GPU and device lock like a real trial.
* ``MIXER_NAS_TABULAR_WARMUP=N`` (optional): the first trial of each trial process waits, holding
  its GPU, until N trial processes of the same Tune run have started (at most ``WARMUP_TIMEOUT_S``).
  Tune grows its pool of trial processes only while no trial has finished (with actor reuse, a
  finished trial's process is handed to the oldest waiting trial, whose own process, still
  starting, is discarded); real trials outlast a process start-up, time-compressed ones do not,
  so without the wait a simulated pool of 64 would run a dozen trials at a time.
* ``MIXER_NAS_TABULAR_LOG=FILE`` (optional): each trial appends a ``start`` and an ``end`` JSON
  line (time, node, GPUs, architecture hash, Tune trial id), the ground truth the scale benchmark
  compares the store with (trials lost or run twice, device time held).

The answers come from a replay file rather than the table itself because the trial processes must
stay free of torch (loading a table needs the search space, which needs the backbones): a simulated
pool runs 64 trial processes on one machine.  The file is SQLite, so each trial reads one row.
"""
from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from search_spaces.canonical import canonical_json, json_hash

if TYPE_CHECKING:
    from nas.bench.evaluator import TabularEvaluator

__all__ = ["LOG_ENV", "REPLAY_FORMAT", "TABULAR_ENV", "TIME_SCALE_ENV", "WARMUP_ENV", "ReplayBook",
           "ReplayedTrialError", "SimulatedTrial", "log_trial", "replay_book", "time_scale", "wait_for_pool",
           "write_replay"]

TABULAR_ENV = "MIXER_NAS_TABULAR"
TIME_SCALE_ENV = "MIXER_NAS_TIME_SCALE"
LOG_ENV = "MIXER_NAS_TABULAR_LOG"
WARMUP_ENV = "MIXER_NAS_TABULAR_WARMUP"
WARMUP_TIMEOUT_S = 600.0
WARMUP_POLL_S = 0.5
REPLAY_FORMAT = "mixer-nas-replay/1"

Report = Callable[[dict[str, Any], "str | None"], "bool | None"]


class ReplayedTrialError(RuntimeError):
    """Raised where the recorded trial raised (its message is the recorded error)."""


def write_replay(evaluator: "TabularEvaluator", path: str | Path) -> Path:
    """Write every architecture's recorded reports (``evaluator.reports``) to a replay file at ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE steps (arch_hash TEXT PRIMARY KEY, steps TEXT NOT NULL)")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("format", REPLAY_FORMAT), ("measure", canonical_json(evaluator.measure.to_dict())),
            ("space", evaluator.table.space.name), ("rows", str(len(evaluator.table)))])
        db.executemany("INSERT INTO steps VALUES (?, ?)", (
            (entry.arch.hash, json.dumps([[s.seconds, s.result, s.error] for s in evaluator.reports(entry.arch)]))
            for entry in evaluator.table))
    db.close()
    tmp.replace(path)
    return path


class ReplayBook:
    """A replay file opened read-only; ``run_trial`` is the drop-in for ``nas.trial.runner.run_trial``."""

    def __init__(self, path: str | Path, scale: float = 0.0):
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{TABULAR_ENV}: replay file {str(self.path)!r} does not exist")
        self.scale = scale
        self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{TABULAR_ENV}: {str(self.path)!r} is not a replay file ({exc})") from None
        if meta.get("format") != REPLAY_FORMAT:
            raise ValueError(f"{TABULAR_ENV}: {str(self.path)!r} has format {meta.get('format')!r}, "
                             f"expected {REPLAY_FORMAT!r}")
        self.measure: dict[str, Any] = json.loads(meta["measure"])

    def steps(self, arch: Mapping[str, Any]) -> list[tuple[float, dict[str, Any], str | None]]:
        """(device-seconds, report, error) of the recorded trial of ``arch``; ValueError if it has none."""
        row = self._db.execute("SELECT steps FROM steps WHERE arch_hash = ?", (json_hash(dict(arch)),)).fetchone()
        if row is None:
            raise ValueError(f"architecture {json_hash(dict(arch))} has no row in the replay file "
                             f"{str(self.path)!r}")
        return [(float(seconds), result, error) for seconds, result, error in json.loads(row[0])]

    def run_trial(self, config: Mapping[str, Any], report: Report, slept: list[float] | None = None) -> None:
        """Send the recorded reports of ``config["arch"]``, each after its scaled device time (appended
        to ``slept`` when given)."""
        measure = dict(config.get("measure") or {})
        if canonical_json(measure) != canonical_json(self.measure):
            raise ValueError(f"the replay file {str(self.path)!r} was written for measurement settings "
                             f"{canonical_json(self.measure)}, the search uses {canonical_json(measure)}")
        for seconds, result, error in self.steps(config["arch"]):
            if self.scale > 0:
                time.sleep(seconds * self.scale)
                if slept is not None:
                    slept.append(seconds * self.scale)
            if error is not None:
                raise ReplayedTrialError(error)
            if report(dict(result), None) is False:
                return


def time_scale(environ: Mapping[str, str] = os.environ) -> float:
    """``MIXER_NAS_TIME_SCALE`` as a finite number >= 0 (0 when unset)."""
    text = environ.get(TIME_SCALE_ENV, "").strip()
    try:
        value = float(text) if text else 0.0
    except ValueError:
        raise ValueError(f"{TIME_SCALE_ENV} must be a number >= 0, got {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"{TIME_SCALE_ENV} must be a finite number >= 0, got {text!r}")
    return value


def replay_book(environ: Mapping[str, str] = os.environ) -> ReplayBook | None:
    """The replay file named by ``MIXER_NAS_TABULAR`` (opened once per process), or None when unset."""
    path = environ.get(TABULAR_ENV, "").strip()
    return _open_book(path, time_scale(environ)) if path else None


@functools.lru_cache(maxsize=4)
def _open_book(path: str, scale: float) -> ReplayBook:
    return ReplayBook(path, scale)


def log_trial(event: str, **fields: Any) -> None:
    """Append one JSON line to ``MIXER_NAS_TABULAR_LOG`` (nothing when unset); O_APPEND keeps lines whole."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps({"event": event, "time": time.time(), "pid": os.getpid(), **fields}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


_joined: set[str] = set()  # Tune runs this process has joined the warm-up of


def wait_for_pool(run: str, directory: Path, environ: Mapping[str, str] = os.environ,
                  timeout_s: float = WARMUP_TIMEOUT_S) -> float:
    """On this process's first trial of Tune run ``run``: wait until ``MIXER_NAS_TABULAR_WARMUP``
    trial processes of that run have started (each leaves a marker file in ``directory``), or
    ``timeout_s``; returns the seconds waited (0 when unset or already joined)."""
    text = environ.get(WARMUP_ENV, "").strip()
    if not text or run in _joined:
        return 0.0
    try:
        wanted = int(text)
    except ValueError:
        raise ValueError(f"{WARMUP_ENV} must be a whole number of trial processes, got {text!r}") from None
    _joined.add(run)
    markers = directory / f"warmup-{run}"
    markers.mkdir(mode=0o700, parents=True, exist_ok=True)
    (markers / str(os.getpid())).touch()
    started = time.monotonic()
    while time.monotonic() - started < timeout_s and sum(1 for _ in markers.iterdir()) < wanted:
        time.sleep(WARMUP_POLL_S)
    return time.monotonic() - started


class SimulatedTrial:
    """One trial answered by a replay file: its lock keys (fake GPUs have no UUID: one key per node
    and GPU id, as a real pool has one per GPU), its body, and its ground-truth log lines."""

    def __init__(self, book: ReplayBook, config: Mapping[str, Any], *, node_id: str, gpu_ids: list[str],
                 trial_id: str, run: str):
        self.book = book
        self.run = run
        self.lock_keys = [f"sim-{node_id}-gpu-{g}" for g in gpu_ids] or [f"sim-{node_id}-cpu"]
        self._slept: list[float] = []
        self.fields: dict[str, Any] = {"trial": trial_id, "run": run, "arch": json_hash(dict(config["arch"])),
                                       "node": node_id, "gpus": gpu_ids}

    def begin(self, marker_dir: Path) -> None:
        """Log the start; on this process's first trial of the run, wait for the pool to fill."""
        log_trial("start", **self.fields)
        self.fields["warmup_s"] = wait_for_pool(self.run, marker_dir)

    def run_trial(self, config: Mapping[str, Any], report: Report) -> None:
        self.book.run_trial(config, report, self._slept)

    def end(self, returned: bool) -> None:
        """Log the end (``returned`` False: it raised, or Tune stopped it inside a report) and the
        scaled device time the replay slept (what an ideal driver would have held the GPU for)."""
        log_trial("end", returned=returned, replayed_s=sum(self._slept), **self.fields)
