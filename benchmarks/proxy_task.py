"""Does the offline proxy task separate architectures?  Generation speed and a random search's spread.

Measures what issue 8 asks of the default offline task on ``hybrid_metaformer_tiny``:

- seconds to generate a 10k-image split: the first call in the process (it also imports
  scikit-learn, loads the bundled digits and rescales them) and a second call; goal < 10 s;
- a ``--trials``-trial random search without early stopping (``nas search`` in a subprocess,
  the demo's recipe): the completed trials' accuracy spread (goal >= 15 points), the best
  (goal <= 95 %, headroom), the six seed hybrids' accuracies (goal: two differ by > 3 points),
  and seconds per trial: wall time from the store's timestamps (the machine's load average is
  recorded beside it, since trials share the CPUs with whatever else runs) and, unaffected by
  that load, the CPU seconds of the six seed trials re-run in this process on one thread
  (``run_trial``, the search's stored recipe and measurement settings: measurement and training).

    python -m benchmarks.proxy_task [--dataset glyphs] [--trials 40] [--out benchmarks/results/proxy_task.json]
    python -m benchmarks.proxy_task --db sqlite:///t.db --search r40   # summarise a search already run
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOALS = {"spread_min": 0.15, "best_max": 0.95, "seed_gap_min": 0.03, "generate_10k_s_max": 10.0}
SPACE = "hybrid_metaformer_tiny"


def generation_seconds(dataset: str, count: int = 10_000) -> dict[str, float]:
    """Wall time of generating ``count`` images: the first call (glyphs loaded and rescaled) and a second one."""
    start = time.perf_counter()
    from nas.trial import synthetic

    task = synthetic.parse_task_spec(dataset)
    synthetic.generate(task, count, seed=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    synthetic.generate(task, count, seed=1)
    return {"first_call_s": round(first, 3), "second_call_s": round(time.perf_counter() - start, 3)}


def run_search(db: str, name: str, dataset: str | None, trials: int, workdir: str, extra: list[str]) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", SPACE, "--budget", f"{trials}trials",
           "--strategy", "random", "--no-asha", "--db", db, "--artifacts", f"{workdir}/artifacts", "--quiet",
           "--name", name, *(["--dataset", dataset] if dataset else []), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"search failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall, "nas " + " ".join(cmd[3:])


def summarise(db: str, name: str) -> dict[str, Any]:
    """Spread, best, seeds and trial seconds of the completed trials of search ``name``."""
    from nas.store import open_store

    store = open_store(db)
    try:
        search = store.get_search(name)
        if search is None:
            raise SystemExit(f"no search named {name!r} in {db}")
        trials = store.trials(search=name)
    finally:
        store.close()
    done = [t for t in trials if t.status == "completed" and t.accuracy is not None and t.reused_from is None]
    if not done:
        raise SystemExit(f"search {name!r} has no completed trials")
    accuracies = [t.accuracy for t in done]
    seeds = {t.seed_name: round(t.accuracy, 4) for t in done if t.seed_name}
    seconds = [_seconds(t) for t in done]
    return {
        "search": name, "recipe": search.config["recipe"],
        "trials": len(trials), "completed": len(done),
        "by_status": _count(str(t.status) for t in trials),
        "accuracy": {"min": round(min(accuracies), 4), "max": round(max(accuracies), 4),
                     "spread": round(max(accuracies) - min(accuracies), 4),
                     "median": round(statistics.median(accuracies), 4)},
        "seeds": seeds,
        "seed_gap": round(max(seeds.values()) - min(seeds.values()), 4) if len(seeds) >= 2 else None,
        "seconds_per_trial": {"median": round(statistics.median(seconds), 2), "min": round(min(seconds), 2),
                              "max": round(max(seconds), 2)},
        "all_accuracies": sorted(round(a, 4) for a in accuracies),
    }


def seed_cpu_seconds(db: str, name: str) -> dict[str, float]:
    """Re-run the search's seed trials here on one thread; CPU seconds of each (measure + proxy training)."""
    import torch

    from nas.store import open_store
    from nas.trial.runner import run_trial

    store = open_store(db)
    try:
        config = store.get_search(name).config
        seeds = [t for t in store.trials(search=name) if t.seed_name and t.reused_from is None]
    finally:
        store.close()
    torch.set_num_threads(1)
    seconds = {}
    for trial in seeds:
        start = time.process_time()
        run_trial({"arch": trial.arch, "recipe": config["recipe"], "measure": config["measure"], "cpus": 1},
                  lambda metrics, weights_dir: None, device="cpu")
        seconds[trial.seed_name] = round(time.process_time() - start, 2)
    return seconds


def check(result: dict[str, Any]) -> dict[str, bool]:
    search, generation = result["search"], result["generation_10k"]
    return {
        "spread >= 15 points": search["accuracy"]["spread"] >= GOALS["spread_min"],
        "best <= 95 %": search["accuracy"]["max"] <= GOALS["best_max"],
        "two seeds differ by > 3 points": (search["seed_gap"] or 0.0) > GOALS["seed_gap_min"],
        "10k images in < 10 s": generation["first_call_s"] < GOALS["generate_10k_s_max"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="generated task spec (default: the proxy recipe's default task)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--db", help="summarise an existing search in this database instead of running one")
    parser.add_argument("--search", help="name of that search (with --db)")
    parser.add_argument("--no-cpu-seconds", dest="cpu_seconds", action="store_false",
                        help="skip re-running the seed trials for their CPU seconds")
    parser.add_argument("--out", default="benchmarks/results/proxy_task.json")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="further `nas search` flags after --")
    args = parser.parse_args(argv)
    from nas.trial.recipe import ProxyRecipe

    dataset = args.dataset or ProxyRecipe().dataset
    generation = generation_seconds(dataset)
    load_before = os.getloadavg()
    if args.db:
        if not args.search:
            parser.error("--db needs --search NAME")
        db, name, wall, command = args.db, args.search, None, None
        result_search = summarise(db, name)
        cpu = seed_cpu_seconds(db, name) if args.cpu_seconds else None
    else:
        with tempfile.TemporaryDirectory(prefix="mixer-nas-proxy-task-") as tmp:
            db, name = f"sqlite:///{tmp}/proxy_task.db", "proxy-task"
            wall, command = run_search(db, name, args.dataset, args.trials, tmp, [a for a in args.extra if a != "--"])
            result_search = summarise(db, name)
            cpu = seed_cpu_seconds(db, name) if args.cpu_seconds else None
    result_search["seed_cpu_seconds_one_thread"] = cpu
    result = {
        "dataset": result_search["recipe"]["dataset"], "space": SPACE, "command": command,
        "search_wall_s": round(wall, 1) if wall is not None else None,
        "generation_10k": {"dataset": dataset, **generation},
        "search": result_search, "goals": GOALS,
        "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    result["met"] = check(result)
    _print(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(result["met"].values()) else 1


def _print(result: dict[str, Any]) -> None:
    s, g = result["search"], result["generation_10k"]
    print(f"task {result['dataset']!r}: 10k images in {g['first_call_s']:.2f} s (first call), "
          f"{g['second_call_s']:.2f} s (second)")
    print(f"{'trials':>7} {'done':>5} {'min':>6} {'median':>7} {'max':>6} {'spread':>7} {'s/trial (median, max)':>22}")
    a, t = s["accuracy"], s["seconds_per_trial"]
    print(f"{s['trials']:7d} {s['completed']:5d} {a['min']:6.3f} {a['median']:7.3f} {a['max']:6.3f} "
          f"{a['spread']:7.3f} {t['median']:>11.1f}, {t['max']:.1f}")
    cpu = s.get("seed_cpu_seconds_one_thread") or {}
    for seed, accuracy in s["seeds"].items():
        extra = f"   {cpu[seed]:6.1f} CPU s (one thread)" if seed in cpu else ""
        print(f"  {seed:18s} {accuracy:.3f}{extra}")
    print(f"load average (1 min) before/after: {result['load_average_1min']['before']} / "
          f"{result['load_average_1min']['after']} on {result['cpus']} CPUs")
    for goal, ok in result["met"].items():
        print(f"  {goal}: {'met' if ok else 'NOT met'}")


def _seconds(trial) -> float:
    start, end = dt.datetime.fromisoformat(trial.started_at), dt.datetime.fromisoformat(trial.finished_at)
    return max((end - start).total_seconds(), 0.0)


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
