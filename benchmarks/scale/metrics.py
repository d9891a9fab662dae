"""What one simulated search measured: the driver's cost per trial, store latency, wall time against
the ideal, budget against the device time the trials really held, trials lost or run twice.

Ground truth comes from the trial processes' log (``MIXER_NAS_TABULAR_LOG``: a line when each trial
starts and one when it ends); the driver's view from the store it wrote.  Definitions:

* held: from a trial's start line to its end line (a trial killed with its process, which writes
  no end line, held its GPU until the fault); warm-up: the part spent waiting for the pool to fill.
* ideal wall: the trial work (held minus warm-up) spread over every GPU of the pool;
  ``wall_vs_ideal`` is the drivers' wall time (start-up included) over it.  A trial holds its GPU
  longer than its replayed device time (``replayed_s``: the table's seconds x the time scale) by
  the latency of each report's round trip through Tune and the driver, so
  ``wall_vs_replay_ideal`` compares the wall time with the table's device time alone.
* ``charged_minus_device_h``: the device-hours the driver charged (the store's per-trial charges,
  what a gpu-h budget adds up) minus the device-hours the trials held.  The driver charges from
  Tune's start event to its end event, so each trial differs by Tune's latency on both ends.
* lost: an architecture a trial process began, or the store has a row for, whose evaluation has no
  outcome in the end: no completed, stopped or infeasible row and no failure of its own (a row
  left running, one interrupted and never re-run, or one whose worker or node died).
* re-run: an architecture that trial processes began more than once.
"""
from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.scale.simulate import SimulatedSearch

INTERRUPTED = "interrupted"
# Failures that say nothing about the architecture: its process or node went away under it.
INFRASTRUCTURE = re.compile(r"ActorDied|ActorUnavailable|NodeDied|WorkerCrashed|RayActorError|OwnerDied|"
                            r"died unexpectedly|node .* (was|is) (dead|killed|removed)", re.I)


def stored_trials(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(
            "SELECT id, arch_hash, status, error, device_hours, tune_trial_id, reused_from_id FROM trials")]


def log_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:  # a line cut by a killed process
            continue
    return lines


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def own_outcome(row: dict[str, Any]) -> bool:
    """A row that says how the architecture fared (not a row lost to the infrastructure or a stop)."""
    if row["status"] in ("completed", "stopped", "infeasible"):
        return True
    error = row["error"] or ""
    return row["status"] == "failed" and not error.startswith(INTERRUPTED) and not INFRASTRUCTURE.search(error)


def search_metrics(sim: SimulatedSearch, gpus: int) -> dict[str, Any]:
    rows = [r for r in stored_trials(sim.db) if r["reused_from_id"] is None]
    tune_ids = {r["tune_trial_id"] for r in rows}
    lines = log_lines(sim.log)
    runs = {line["run"] for line in lines if line.get("trial") in tune_ids}
    starts = {(l["run"], l["trial"]): l for l in lines if l["event"] == "start" and l["run"] in runs}
    ends = {(l["run"], l["trial"]): l for l in lines if l["event"] == "end" and l["run"] in runs}
    held, warmup, replayed, unended = [], [], [], 0
    for key, start in starts.items():
        end = ends.get(key)
        if end is None:
            unended += 1
            stop = sim.fault_time if sim.fault_time and start["time"] < sim.fault_time else sim.ended
            held.append(max(stop - start["time"], 0.0) * max(len(start.get("gpus") or []), 1))
            continue
        held.append((end["time"] - start["time"]) * max(len(end.get("gpus") or []), 1))
        warmup.append(float(end.get("warmup_s") or 0.0))
        replayed.append(float(end.get("replayed_s") or 0.0))
    began = Counter(start["arch"] for start in starts.values())
    outcomes = defaultdict(bool)
    for r in rows:
        outcomes[r["arch_hash"]] |= own_outcome(r)
    lost = {a for a in set(began) | {r["arch_hash"] for r in rows} if not outcomes[a]}
    charged_h = sum(float(r["device_hours"] or 0.0) for r in rows)
    device_h = sum(held) / 3600.0
    work_s = sum(held) - sum(warmup)
    wall_s = sum(d.wall_s for d in sim.drivers)
    trials = len(rows)
    driver_cpu = [d.cpu_s - (d.probe.get("cpu_at_first_trial_s") or d.cpu_s) for d in sim.drivers]
    writes = [ms for d in sim.drivers for ms in d.probe.get("store_write_ms", [])]
    flight = _in_flight(starts, ends, sim)
    return {
        "trials": trials,
        "driver_ms_per_trial": 1000.0 * sum(driver_cpu) / trials if trials else None,
        "store_write_ms_p50": percentile(writes, 0.50),
        "store_write_ms_p99": percentile(writes, 0.99),
        "wall_vs_ideal": wall_s / (work_s / gpus) if work_s > 0 else None,
        "charged_minus_device_h": charged_h - device_h,
        "rss_mb": max((d.rss_mb for d in sim.drivers), default=None),
        "lost": len(lost),
        "rerun": sum(1 for n in began.values() if n > 1),
        # extras
        "fault": sim.fault,
        "completed_run": not sim.stopped_by_time_limit and all(d.returncode == 0 for d in sim.drivers[-1:]),
        "wall_s": wall_s,
        "ideal_wall_s": work_s / gpus,
        "replay_ideal_wall_s": sum(replayed) / gpus,  # the table's device time only: no Tune or driver latency
        "wall_vs_replay_ideal": wall_s / (sum(replayed) / gpus) if sum(replayed) > 0 else None,
        "held_s_per_trial": sum(held) / len(held) if held else None,
        "replayed_s_per_trial": sum(replayed) / len(replayed) if replayed else None,
        "driver_cpu_s": sum(d.cpu_s for d in sim.drivers),
        "driver_startup_cpu_s": sum(d.probe.get("cpu_at_first_trial_s") or 0.0 for d in sim.drivers),
        "driver_wall_to_first_trial_s": [d.probe.get("wall_at_first_trial_s") for d in sim.drivers],
        "pool_cpu_s_per_trial": sim.pool_cpu_s / trials if trials else None,
        "store_writes": len(writes),
        "store_write_ms_max": max(writes, default=None),
        "charged_h": charged_h,
        "device_h": device_h,
        "charged_minus_device_s_per_trial": 3600.0 * (charged_h - device_h) / trials if trials else None,
        "warmup_h": sum(warmup) / 3600.0,
        "trials_begun_by_workers": len(starts),
        "trials_killed_in_flight": unended,
        "statuses": dict(Counter(r["status"] for r in rows)),
        "infrastructure_failures": sum(1 for r in rows if INFRASTRUCTURE.search(r["error"] or "")),
        "interrupted": sum(1 for r in rows if (r["error"] or "").startswith(INTERRUPTED)),
        "in_flight_mean": flight[0],
        "in_flight_peak": flight[1],
        "drivers": [{"returncode": d.returncode, "killed": d.killed, "wall_s": d.wall_s, "cpu_s": d.cpu_s,
                     "rss_mb": d.rss_mb} for d in sim.drivers],
        "fault_at_trials": sim.fault_at_trials,
        "stopped_by_time_limit": sim.stopped_by_time_limit,
        "lost_examples": sorted(lost)[:5],
        "errors": dict(Counter((r["error"] or "")[:120] for r in rows if r["status"] == "failed").most_common(6)),
    }


def _in_flight(starts: dict, ends: dict, sim: SimulatedSearch) -> tuple[float | None, int]:
    """Mean and peak number of trials running, from the first start to the last end."""
    events = []
    for key, start in starts.items():
        events.append((start["time"], 1))
        end = ends.get(key)
        events.append((end["time"] if end else (sim.fault_time or sim.ended), -1))
    if not events:
        return None, 0
    events.sort()
    running = peak = 0
    area, last = 0.0, events[0][0]
    for t, step in events:
        area += running * (t - last)
        last, running = t, running + step
        peak = max(peak, running)
    span = events[-1][0] - events[0][0]
    return (area / span if span > 0 else None), peak
