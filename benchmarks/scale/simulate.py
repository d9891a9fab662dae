"""One simulated search on the pool: the real ``nas search`` as a child process, watched, with a fault.

The driver is ``python -m benchmarks.scale.probe STATS search ... --address POOL`` (the real
``nas.cli.main`` with timers on its store writes).  While it runs, this process polls the store
(read-only) for the number of trials started, to inject the fault at the requested point:

* ``remove_node``: one worker node (8 fake GPUs and the trials on them) is killed at once;
* ``kill_driver``: the driver gets SIGKILL, then ``nas search --resume NAME`` continues the search
  (a second probed driver).

Every run is bounded: past ``max_wall_s`` the driver gets SIGTERM (trials in flight are recorded
interrupted) and the run is reported as stopped.  A driver's CPU time and peak RSS come from
``wait4`` (they survive SIGKILL); its per-trial figures from the probe.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.scale.pool import SimulatedPool

REPO = Path(__file__).resolve().parents[2]
POLL_S = 1.0


@dataclass
class DriverRun:
    """One driver process: how it ended and what the probe and ``wait4`` saw."""

    argv: list[str]
    returncode: int | None = None
    killed: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system, whole process (wait4)
    rss_mb: float = 0.0
    probe: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulatedSearch:
    """What happened in one simulated search (possibly two drivers: killed, then resumed)."""

    name: str
    trials: int
    db: Path
    log: Path
    drivers: list[DriverRun] = field(default_factory=list)
    fault: str | None = None
    fault_at_trials: int | None = None
    fault_time: float | None = None  # time.time() of the fault
    removed_node: str | None = None
    stopped_by_time_limit: bool = False
    started: float = 0.0  # time.time()
    ended: float = 0.0
    pool_cpu_s: float = 0.0  # CPU of the pool's processes (nodes and trial workers) during the search

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["db"], out["log"] = str(self.db), str(self.log)
        for d in out["drivers"]:
            d["probe"] = {k: v for k, v in d["probe"].items() if k != "store_write_ms"}
        return out


def started_trials(db: Path) -> int:
    """Trials the store has rows for (0 while it does not exist yet); read-only, never blocks the driver."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as conn:
            return int(conn.execute("SELECT count(*) FROM trials").fetchone()[0])
    except sqlite3.Error:
        return 0


def process_tree_cpu(root: int, skip: set[int] = frozenset()) -> dict[int, float]:
    """CPU seconds (user + system) of ``root`` and every process below it but ``skip`` and theirs, by pid."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in skip:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks
        for task in tasks:
            try:
                todo += [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


class Simulation:
    """Runs simulated searches on one pool, in a work directory."""

    def __init__(self, pool: SimulatedPool, work: Path, space_file: Path, max_latency_ms: float, epochs: int,
                 log: Path, lock_dir: Path):
        self.pool = pool
        self.work = work
        self.space_file = space_file
        self.max_latency_ms = max_latency_ms
        self.epochs = epochs
        self.log = log  # the trial processes' MIXER_NAS_TABULAR_LOG
        self.lock_dir = lock_dir
        self._pool_cpu: dict[int, float] = {}
        self._drivers: set[int] = set()

    def search(self, name: str, trials: int, *, fault: str | None = None, max_wall_s: float = 1800.0,
               out=sys.stdout) -> SimulatedSearch:
        run_dir = self.work / name
        run_dir.mkdir(parents=True, exist_ok=True)
        db = run_dir / "nas.db"
        if self.log.exists():  # trial processes append to this path: start it empty for this search
            self.log.rename(self.log.with_name(f"{self.log.name}.{time.time_ns()}"))
        result = SimulatedSearch(name=name, trials=trials, db=db, log=run_dir / "trials.jsonl", fault=fault,
                                 started=time.time())
        deadline = time.monotonic() + max_wall_s
        cpu_before = self._sample_pool_cpu()
        common = ["--db", f"sqlite:///{db}", "--address", self.pool.address, "--artifacts", str(run_dir / "artifacts")]
        first = ["search", "--space", str(self.space_file), "--budget", f"{trials}trials", "--gpus-per-trial", "1",
                 "--max-latency-ms", f"{self.max_latency_ms:g}", "--epochs", str(self.epochs), "--name", name, *common]
        fault_at = trials // 2 if fault else None
        driver = self._drive(first, run_dir / "driver-1", db, deadline, fault, fault_at, result, out)
        result.drivers.append(driver)
        if driver.killed and fault == "kill_driver" and time.monotonic() < deadline:
            print(f"  [{name}] driver killed at {result.fault_at_trials} trials; resuming", file=out, flush=True)
            resumed = self._drive(["search", "--resume", name, *common], run_dir / "driver-2", db, deadline,
                                  None, None, result, out)
            result.drivers.append(resumed)
        result.ended = time.time()
        result.pool_cpu_s = self._sample_pool_cpu() - cpu_before
        time.sleep(2.0)  # stragglers of a stopped run write their last lines
        if self.log.exists():
            self.log.rename(result.log)
        return result

    def _drive(self, argv: list[str], prefix: Path, db: Path, deadline: float, fault: str | None,
               fault_at: int | None, result: SimulatedSearch, out) -> DriverRun:
        stats = prefix.with_suffix(".probe.json")
        cmd = [sys.executable, "-m", "benchmarks.scale.probe", str(stats), *argv]
        env = {**os.environ, "MIXER_NAS_LOCK_DIR": str(self.lock_dir), "RAY_AUTH_MODE": "disabled"}
        run = DriverRun(argv=argv)
        started = time.monotonic()
        with prefix.with_suffix(".log").open("w") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._drivers.add(proc.pid)
        terminated = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(POLL_S)
            self._sample_pool_cpu()
            if fault_at is not None and result.fault_time is None and started_trials(db) >= fault_at:
                result.fault_at_trials, result.fault_time = started_trials(db), time.time()
                if fault == "remove_node":
                    result.removed_node = self.pool.remove_node()
                    print(f"  [{result.name}] removed node {result.removed_node[:8]} at {result.fault_at_trials} "
                          f"trials", file=out, flush=True)
                else:
                    os.kill(proc.pid, signal.SIGKILL)
                    run.killed = True
            if not terminated and time.monotonic() > deadline:
                print(f"  [{result.name}] time limit reached: stopping the driver (SIGTERM)", file=out, flush=True)
                proc.send_signal(signal.SIGTERM)
                result.stopped_by_time_limit = terminated = True
        run.returncode = os.waitstatus_to_exitcode(status)
        run.wall_s = time.monotonic() - started
        run.cpu_s = usage.ru_utime + usage.ru_stime
        run.rss_mb = usage.ru_maxrss / 1024
        if stats.exists():
            run.probe = json.loads(stats.read_text())
        return run

    def _sample_pool_cpu(self) -> float:
        """Sum of the CPU seconds of the pool's processes seen so far (dead ones keep their last sample)."""
        self._pool_cpu.update(process_tree_cpu(os.getpid(), skip=self._drivers))
        self._pool_cpu.pop(os.getpid(), None)
        return sum(self._pool_cpu.values())
