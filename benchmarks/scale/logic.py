"""What the driver's own search logic costs per trial as a search grows, without Ray: the strategy
(ask/tell, speed predictor), the searcher, MO-ASHA and the budget, driven by the Ray-free simulator
(``nas.bench.simulator``) over the scale benchmark's synthetic table with 64 trials at once.

    python -m benchmarks.scale.logic [--trials 10000] [--strategy mo-evolution] [--json FILE]

Prints, per window of a tenth of the trials, the CPU milliseconds per trial (from one trial start to
the one ``--trials``/10 later): flat windows mean no part of the logic grows with the trials seen.
Tune's own loop and the store are not in it (``python -m benchmarks.scale`` measures the whole driver).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import nas.bench.simulator as simulator
from nas.bench import TabularEvaluator
from nas.budget import parse_budget
from nas.search.searcher import StrategySearcher
from nas.trial.measure_settings import MeasureSettings

from benchmarks.scale.table import scale_space, scale_table

WORKERS = 64
MAX_LATENCY_MS = 5.0  # as the benchmark's searches


class _StartClock(StrategySearcher):
    """The searcher, noting the CPU clock at every trial it starts."""

    marks: list[float] = []

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        if isinstance(config, dict):
            _StartClock.marks.append(time.process_time())
        return config


def measure(trials: int, strategy: str = "mo-evolution") -> dict[str, Any]:
    space = scale_space()
    measure_settings = MeasureSettings.defaults_for(True, target_res=space.target_res, max_latency_ms=MAX_LATENCY_MS)
    evaluator = TabularEvaluator(scale_table(space), measure_settings)
    _StartClock.marks = []
    original, simulator.StrategySearcher = simulator.StrategySearcher, _StartClock
    try:
        started = time.process_time()
        result = simulator.simulate_search(evaluator, strategy, parse_budget(f"{trials}trials"), workers=WORKERS)
        total = time.process_time() - started
    finally:
        simulator.StrategySearcher = original
    marks, window = _StartClock.marks, max(trials // 10, 1)
    windows = [{"from": i, "to": i + window, "ms_per_trial": 1000.0 * (marks[i + window] - marks[i]) / window}
               for i in range(0, len(marks) - window, window)]
    return {"trials": len(result.trials), "strategy": strategy, "workers": WORKERS, "cpu_s": total,
            "ms_per_trial": 1000.0 * total / max(len(result.trials), 1), "windows": windows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale.logic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--strategy", default="mo-evolution")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    report = measure(args.trials, args.strategy)
    for w in report["windows"]:
        print(f"trials {w['from']:>6}-{w['to']:<6} {w['ms_per_trial']:7.2f} ms/trial")
    print(f"{report['trials']} trials, {report['cpu_s']:.1f} s CPU, {report['ms_per_trial']:.2f} ms/trial")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
