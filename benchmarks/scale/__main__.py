"""Scale by simulation: 100, 1,000 and 10,000-trial searches of the real driver on a simulated 64-GPU pool.

    python -m benchmarks.scale [--sizes 100,1000,10000] [--nodes 8 --gpus-per-node 8] [--time-scale 0.004]
                               [--json benchmarks/results/scale.json] [--no-faults] [--no-dashboard]

A Ray cluster of ``--nodes`` x ``--gpus-per-node`` fake GPUs runs on this machine
(``benchmarks.scale.pool``); each size is one real ``nas search --address`` whose trials are
answered from a synthetic MixerBench table (``benchmarks.scale.table``, ``nas.search.tabular``)
while holding their fake GPU for ``--time-scale`` x the recorded device time.  Faults: a worker
node is killed halfway through the second-largest search, the driver is SIGKILLed halfway
through the largest one and resumed.  Then the dashboard opens a store of ``--dashboard-trials``
trials in chromium (``benchmarks.scale.dashboard``): the largest search's, or, when that one has
fewer (cut by the time limit), one written without Ray by ``benchmarks.scale.fill``.  Prints a
table and writes the JSON (``benchmarks.scale.metrics`` defines every number).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.trial.measure_settings import MeasureSettings

from benchmarks.scale.table import EPOCHS, build_replay, scale_space

DEFAULT_JSON = "benchmarks/results/scale.json"
MAX_LATENCY_MS = 5.0  # about 15% of the synthetic architectures are over it (infeasible)
COLUMNS = ("trials", "driver_ms_per_trial", "store_write_ms_p50", "store_write_ms_p99", "wall_vs_ideal",
           "charged_minus_device_h", "rss_mb", "lost", "rerun", "in_flight_mean", "fault")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # atexit and finally blocks stop the pool
    work = Path(args.work or tempfile.mkdtemp(prefix="mixer-nas-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + 60.0 * args.max_minutes
    space = scale_space(depths=tuple(int(d) for d in args.depths.split(",")),
                        widths=tuple(int(w) for w in args.widths.split(",")))
    space_file = work / "space.json"
    space_file.write_text(json.dumps(space.describe()))
    measure = MeasureSettings.defaults_for(True, target_res=space.target_res, max_latency_ms=MAX_LATENCY_MS)
    table = build_replay(work / "replay.sqlite", measure, space)
    gpus = args.nodes * args.gpus_per_node
    env = {"MIXER_NAS_TABULAR": str(work / "replay.sqlite"), "MIXER_NAS_TIME_SCALE": f"{args.time_scale:g}",
           "MIXER_NAS_TABULAR_WARMUP": str(gpus), "MIXER_NAS_TABULAR_LOG": str(work / "trials.jsonl")}
    from benchmarks.scale.metrics import search_metrics
    from benchmarks.scale.pool import SimulatedPool
    from benchmarks.scale.simulate import Simulation

    print(f"simulated pool: {args.nodes} nodes x {args.gpus_per_node} fake GPUs; table {len(table)} architectures; "
          f"time scale {args.time_scale:g}; work dir {work}", flush=True)
    pool = SimulatedPool(args.nodes, args.gpus_per_node, env)
    runs: list[dict[str, Any]] = []
    try:
        sim = Simulation(pool, work, space_file, MAX_LATENCY_MS, EPOCHS, work / "trials.jsonl", work / "locks")
        for size in sizes:
            fault = None
            if args.faults and size == sizes[-1]:
                fault = "kill_driver"
            elif args.faults and len(sizes) > 1 and size == sizes[-2]:
                fault = "remove_node"
            if len(pool.nodes) < args.nodes:
                pool.add_node()  # a node removed by the previous search's fault comes back
            left = deadline - time.monotonic()
            print(f"search of {size} trials{f' ({fault})' if fault else ''}: up to {left / 60:.1f} min", flush=True)
            result = sim.search(f"scale-{size}", size, fault=fault, max_wall_s=max(left, 60.0))
            if not result.db.exists():
                log = work / f"scale-{size}" / "driver-1.log"
                tail = log.read_text().strip().splitlines()[-15:] if log.exists() else []
                print("\n".join(tail), file=sys.stderr)
                print(f"error: the search driver exited ({result.drivers[0].returncode}) before it wrote its store "
                      f"{result.db}; its log's last lines are above", file=sys.stderr)
                return 2
            metrics = {"size": size, **search_metrics(result, gpus)}
            runs.append(metrics)
            print(_row(metrics), flush=True)
    finally:
        pool.shutdown()
    report: dict[str, Any] = {"runs": runs, "faults": _faults(runs), "setup": {
        "nodes": args.nodes, "gpus_per_node": args.gpus_per_node, "time_scale": args.time_scale,
        "table_rows": len(table), "depths": args.depths, "widths": args.widths, "max_latency_ms": MAX_LATENCY_MS, "epochs": EPOCHS, "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg()}}
    _write(args.json, report)  # the searches' figures are safe whatever happens to the dashboard check
    if args.dashboard and runs:
        from benchmarks.scale.dashboard import measure_dashboard

        try:
            db, name, source = _dashboard_store(work, runs, args.dashboard_trials)
            report["dashboard"] = {**measure_dashboard(db, name), "store": source}
        except Exception as exc:  # noqa: BLE001 - reported in the JSON, the searches' numbers still count
            report["dashboard"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    report["total_wall_s"] = time.monotonic() - started
    print(_table(report), flush=True)
    _write(args.json, report)
    print(f"wrote {args.json}", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _dashboard_store(work: Path, runs: list[dict[str, Any]], trials: int) -> tuple[Path, str, str]:
    """(store, search, where it came from) for the dashboard check: the largest search's store when it
    holds ``trials`` trials, else a search of ``trials`` simulated trials written without Ray
    (``benchmarks.scale.fill``: a stopped or small largest search still gets the check at full size)."""
    largest = max(runs, key=lambda r: r["trials"])
    if largest["trials"] >= trials:
        return work / f"scale-{largest['size']}" / "nas.db", f"scale-{largest['size']}", "largest search"
    from benchmarks.scale.fill import fill_store

    db = work / "dashboard-fill.db"
    db.unlink(missing_ok=True)
    started = time.monotonic()
    fill_store(f"sqlite:///{db}", trials, "scale-fill")
    print(f"dashboard store: {trials} simulated trials written in {time.monotonic() - started:.0f} s "
          f"(the largest search has {largest['trials']})", flush=True)
    return db, "scale-fill", f"benchmarks.scale.fill ({trials} trials)"


def _write(path: str, report: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=1, default=str) + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,10000", help="trials per search, comma-separated")
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--time-scale", type=float, default=0.004, help="seconds held per recorded device-second")
    p.add_argument("--max-minutes", type=float, default=20.0, help="stop the searches after this long in all")
    p.add_argument("--depths", default="1,2,3", help="depth choices per stage of the synthetic space")
    p.add_argument("--widths", default="16,32", help="width choices per stage of the synthetic space")
    p.add_argument("--no-faults", dest="faults", action="store_false")
    p.add_argument("--no-dashboard", dest="dashboard", action="store_false")
    p.add_argument("--dashboard-trials", type=int, default=10_000,
                   help="trials of the store the dashboard check opens (filled without Ray if the largest search "
                        "has fewer)")
    p.add_argument("--json", default=DEFAULT_JSON)
    p.add_argument("--work", help="work directory (default: a new temporary one, deleted at the end)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (stores, logs)")
    return p


def _faults(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for run in runs:
        key = {"remove_node": "node_removed", "kill_driver": "driver_killed"}.get(run["fault"])
        if key:
            out[key] = {"trials": run["trials"], "at_trials": run["fault_at_trials"], "lost": run["lost"],
                        "rerun": run["rerun"], "budget_drift_h": run["charged_minus_device_h"],
                        "killed_in_flight": run["trials_killed_in_flight"],
                        "infrastructure_failures": run["infrastructure_failures"],
                        "interrupted": run["interrupted"], "completed_run": run["completed_run"]}
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def _row(metrics: dict[str, Any]) -> str:
    return "  " + "  ".join(f"{c}={_fmt(metrics.get(c))}" for c in COLUMNS)


def _table(report: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |" for r in report["runs"]]
    for name, fault in report.get("faults", {}).items():
        lines.append(f"{name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in fault.items()))
    if "dashboard" in report:
        lines.append("dashboard: " + ", ".join(f"{k}={_fmt(v)}" for k, v in report["dashboard"].items()
                                               if not isinstance(v, (dict, list))))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
