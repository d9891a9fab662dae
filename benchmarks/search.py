"""Search efficiency of the demo: the share of wall time the trial slots spend inside trials.

Runs ``nas search`` (the README's demo by default) in a subprocess against a fresh SQLite file,
then compares the time trials were running (store timestamps) with the wall time of the whole
command times the number of trial slots.  What is not inside trials is overhead: Python and Ray
start-up, scheduling gaps between trials, and the driver's bookkeeping.  Goal: >= 85 %.

    python -m benchmarks.search [--budget 10cpu-min] [--slots 2] [--out benchmarks/results/search.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nas.front import summarise
from nas.store import TrialRecord, open_store


def run_demo(budget: str, slots: int, extra: list[str]) -> tuple[float, list[TrialRecord], str]:
    with tempfile.TemporaryDirectory(prefix="mixer-nas-bench-") as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        cmd = [sys.executable, "-m", "nas.cli", "search", "--space", "hybrid_metaformer_tiny", "--budget", budget,
               "--dataset", "digits", "--db", db, "--artifacts", f"{tmp}/artifacts", "--quiet",
               "--cpus-per-trial", "1", "--max-concurrent", str(slots), "--name", "bench", *extra]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"search failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        store = open_store(db)
        try:
            trials = store.trials(search="bench")
        finally:
            store.close()
        return wall, trials, " ".join(cmd[2:])


def trial_seconds(trial: TrialRecord) -> float:
    if trial.reused or not trial.finished_at:
        return 0.0
    start = dt.datetime.fromisoformat(trial.started_at)
    end = dt.datetime.fromisoformat(trial.finished_at)
    return max((end - start).total_seconds(), 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="10cpu-min")
    parser.add_argument("--slots", type=int, default=2, help="concurrent trials (1 CPU each)")
    parser.add_argument("--out", default="benchmarks/results/search.json")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="further `nas search` flags after --")
    args = parser.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]

    wall, trials, command = run_demo(args.budget, args.slots, extra)
    busy = sum(trial_seconds(t) for t in trials)
    share = busy / (wall * args.slots) if wall > 0 else 0.0
    by_status = summarise(trials).by_status
    result = {
        "command": f"nas {command}", "wall_s": round(wall, 2), "slots": args.slots,
        "trial_seconds": round(busy, 2), "share_inside_trials": round(share, 4), "goal": 0.85,
        "trials": len(trials), "by_status": by_status,
        "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
    }
    print(f"{'wall (s)':>10} {'slots':>6} {'in trials (s)':>14} {'share':>7} {'trials':>7}  status")
    print(f"{wall:10.1f} {args.slots:6d} {busy:14.1f} {share:7.1%} {len(trials):7d}  {by_status}")
    print(f"goal: >= 85% of slot time inside trials -> {'met' if share >= 0.85 else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
