"""Speed limits that rarely cost a trial: the speed predictor on MixerBench, simulated.

A latency limit at the table's median latency (half the architectures are over it) and
simulated searches (``nas.bench.simulator``: the real strategies, searcher, budget and the
default early stopping, trials answered from the table), once with the strategies' speed
predictor (``nas.strategies.speed_predictor``: proposals predicted far over the limit are
skipped) and once without.  Reported per strategy, mean over seeds:

- ``infeasible_share_after_20``: of the strategy's own proposals (the space's seeds are not
  proposals) among trials 21.. of the search, the share that turned out over the limit;
- ``hv_ratio``: hypervolume of the found front over the front of the table's *feasible* rows;
- ``spearman_at_proposal``: rank correlation between the latency the predictor expected when each
  proposal after the 20th trial was made (refitted on the trials finished before it started, as the
  strategy saw them) and the table's measured latency;
- ``spearman_table``: rank correlation over the whole table after fitting on every trial the search measured.

    python -m benchmarks.predictor --seeds 20 --budget 100 --json benchmarks/results/predictor.json \\
        [--table benchmarks/mixerbench/mixerbench.json] [--strategies mo-evolution,motpe]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from nas.bench import BenchTable, TabularEvaluator, load_table
from nas.bench.simulator import SimulatedSearch, simulate_search
from nas.budget import parse_budget
from nas.strategies import MULTI_OBJECTIVE, STRATEGY_NAMES
from nas.strategies.speed_predictor import SpeedPredictor
from nas.trial.measure_settings import MeasureSettings

DEFAULT_TABLE = "benchmarks/mixerbench/mixerbench.json"
DEFAULT_JSON = "benchmarks/results/predictor.json"
DEFAULT_STRATEGIES = ("random", "evolution", *MULTI_OBJECTIVE)
WARM_UP_TRIALS = 20


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties); nan for fewer than 3 pairs."""
    if len(a) < 3:
        return float("nan")
    return statistics.correlation(_ranks(a), _ranks(b))


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def feasible_hypervolume(table: BenchTable, limit_ms: float) -> float:
    return table.hypervolume([(e.throughput, e.accuracy) for e in table.completed if e.latency_ms <= limit_ms])


def search_report(table: BenchTable, search: SimulatedSearch, limit_ms: float, true_hv: float) -> dict[str, float]:
    """The four numbers of one simulated search (see the module docstring)."""
    measured = [t for t in search.trials if table.entry(t.arch).measured]
    late = [t for t in search.trials if t.seed_name is None and t.number >= WARM_UP_TRIALS]
    over = [table.entry(t.arch).latency_ms > limit_ms for t in late if table.entry(t.arch).measured]
    expected, actual = [], []
    for trial in late:
        predictor = _fitted(table, [t for t in measured if t.finished_s <= trial.started_s])
        prediction = predictor.predict(trial.arch)
        if prediction is not None and table.entry(trial.arch).measured:
            expected.append(prediction.latency_ms)
            actual.append(table.entry(trial.arch).latency_ms)
    final = _fitted(table, measured)
    rows = [e for e in table.entries if e.measured]
    predictions = [final.predict(e.arch) for e in rows]
    table_rho = spearman([p.latency_ms for p in predictions], [e.latency_ms for e in rows]) \
        if predictions and predictions[0] is not None else float("nan")
    return {"infeasible_share_after_20": sum(over) / len(over) if over else 0.0,
            "infeasible_trials": float(sum(table.entry(t.arch).measured and table.entry(t.arch).latency_ms > limit_ms
                                           for t in search.trials)),
            "hv_ratio": table.hypervolume(search.front_points()) / true_hv,
            "spearman_at_proposal": spearman(expected, actual), "spearman_table": table_rho}


def _fitted(table: BenchTable, trials) -> SpeedPredictor:
    predictor = SpeedPredictor(table.space)
    for t in trials:
        entry = table.entry(t.arch)
        predictor.observe(t.arch, entry.latency_ms, entry.throughput)
    return predictor


def run(table: BenchTable, strategies: list[str], budget: int, seeds: list[int], workers: int) -> dict[str, Any]:
    limit_ms = statistics.median(e.latency_ms for e in table.entries if e.measured)
    evaluator = TabularEvaluator(table, MeasureSettings(max_latency_ms=limit_ms))
    true_hv = feasible_hypervolume(table, limit_ms)
    results: dict[str, Any] = {}
    for strategy in strategies:
        started = time.perf_counter()
        results[strategy] = {}
        for label, options in (("with_predictor", {}), ("without_predictor", {"predict_speed": False})):
            reports = [search_report(table, simulate_search(evaluator, strategy, parse_budget(f"{budget}trials"),
                                                            seed=seed, workers=workers, strategy_options=options),
                                     limit_ms, true_hv) for seed in seeds]
            results[strategy][label] = {key: _mean([r[key] for r in reports]) for key in reports[0]}
        print(f"{strategy}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return {"limit_ms": limit_ms, "budget": budget, "seeds": len(seeds), "workers": workers,
            "warm_up_trials": WARM_UP_TRIALS, "results": results}


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v == v]
    return round(statistics.fmean(finite), 4) if finite else None


def format_report(report: dict[str, Any]) -> str:
    header = (f"{'strategy':<14} {'predictor':>9}  {'infeasible after 20':>19}  {'infeasible':>10}  "
              f"{'HV ratio':>8}  {'rho at proposal':>15}  {'rho table':>9}")
    lines = [f"latency limit {report['limit_ms']:.4g} ms (table median), budget {report['budget']} trials, "
             f"{report['seeds']} seeds", header, "-" * len(header)]
    for strategy, by_mode in report["results"].items():
        for mode, r in by_mode.items():
            lines.append(f"{strategy:<14} {'on' if mode == 'with_predictor' else 'off':>9}  "
                         f"{_pct(r['infeasible_share_after_20']):>19}  {r['infeasible_trials']:>10.1f}  "
                         f"{r['hv_ratio']:>8.3f}  {_num(r['spearman_at_proposal']):>15}  "
                         f"{_num(r['spearman_table']):>9}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="searches per strategy and mode (seeds 0..N-1)")
    parser.add_argument("--budget", type=int, default=100, help="trials per search")
    parser.add_argument("--table", default=DEFAULT_TABLE, help=f"benchmark table (default {DEFAULT_TABLE})")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"result file (default {DEFAULT_JSON})")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES), help="comma-separated strategies")
    parser.add_argument("--workers", type=int, default=4, help="trials running at once in the simulation")
    args = parser.parse_args(argv)
    try:
        strategies = [s.strip() for s in args.strategies.split(",")]
        unknown = [s for s in strategies if s not in STRATEGY_NAMES]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; choices: {', '.join(STRATEGY_NAMES)}")
        if args.seeds < 1 or args.budget <= WARM_UP_TRIALS or args.workers < 1:
            raise ValueError(f"--seeds and --workers must be >= 1 and --budget > {WARM_UP_TRIALS}")
        table = load_table(args.table)
        report = {"table": {"path": args.table, **{k: table.provenance.get(k) for k in ("device_kind",
                                                                                       "code_revision")}},
                  **run(table, strategies, args.budget, list(range(args.seeds)), args.workers)}
    except (ValueError, KeyError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
