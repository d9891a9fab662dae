"""Search quality on MixerBench: the hypervolume each strategy finds at 25-200 evaluations, simulated.

Every strategy of ``nas.strategies.STRATEGY_NAMES`` that can be built here (one needing a missing
optional extra is skipped, with the reason in the JSON) is simulated once per seed and budget by
``nas.bench.simulator`` on the committed table: the real strategy, searcher (the space's seeds
first), budget tracker and Ray Tune scheduler, with the recorded trials answered from the table.
The budget counts evaluations (trials started).  Reported per strategy and budget: the
hypervolume of the found front (accuracy vs log10 throughput; completed trials, see
``nas.bench.quality``) over the table's true front, mean and sample std over seeds.  ``results``
runs with ``nas search``'s default early stopping; every other choice of ``EarlyStopping`` has
its own key (``results_no_early_stopping``, ``results_asha``, ...) with the same shape.

A trials budget charges an early-stopped trial like a full one, so ``equal_device_time`` also
compares the early-stopping choices at equal device time (``nas.bench.equal_time``): per strategy
and budget N, every choice gets the device time of N full trials; reported per choice as above,
plus the per-seed differences (mo-asha - none, mo-asha - asha) with their standard error.

    python -m benchmarks.search_quality --seeds 20 --json benchmarks/results/search_quality.json \\
        [--table benchmarks/mixerbench/mixerbench.json] [--png benchmarks/results/search_quality.png]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from nas.bench import TabularEvaluator, load_table
from nas.bench.equal_time import (BUDGET_RULE, COMPARED, EqualTimeResult, compare_at_equal_device_time,
                                  full_trial_seconds)
from nas.bench.quality import FOUND_FRONT_RULE, QualityStats, search_quality
from nas.budget import parse_budget
from nas.search.scheduler import GRACE_EPOCHS, REDUCTION_FACTOR
from nas.search.settings import DEFAULT_EARLY_STOPPING, EarlyStopping
from nas.strategies import MULTI_OBJECTIVE, STRATEGY_NAMES, create_strategy
from search_spaces import SearchSpace

from benchmarks.charts import Panel, Series, save_line_chart

DEFAULT_TABLE = "benchmarks/mixerbench/mixerbench.json"
DEFAULT_JSON = "benchmarks/results/search_quality.json"
DEFAULT_PNG = "benchmarks/results/search_quality.png"
BUDGETS = (25, 50, 100, 200)


def result_key(choice: EarlyStopping) -> str:
    """JSON key of one early-stopping choice's results: ``results`` for the default."""
    if choice is DEFAULT_EARLY_STOPPING:
        return "results"
    return "results_no_early_stopping" if choice is EarlyStopping.NONE else f"results_{choice.value.replace('-', '_')}"


# JSON key -> early-stopping choice, the default first
MODES = {result_key(c): c for c in sorted(EarlyStopping, key=lambda c: c is not DEFAULT_EARLY_STOPPING)}


def available_strategies(space: SearchSpace, wanted: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """(strategies that can be built here, {skipped strategy: why}) among ``wanted`` (default: all)."""
    usable, skipped = [], {}
    for name in wanted or STRATEGY_NAMES:
        try:
            create_strategy(name, space, seed=0)
        except ValueError as exc:
            if name not in STRATEGY_NAMES:
                raise
            skipped[name] = str(exc)
            continue
        usable.append(name)
    return usable, skipped


def run_benchmark(evaluator: TabularEvaluator, strategies: list[str], budgets: list[int], seeds: list[int],
                  workers: int, out: TextIO | None = None
                  ) -> tuple[dict[str, dict[str, dict[str, QualityStats]]], dict]:
    """{result key: {strategy: {budget: stats}}} and {strategy: {early stopping: seconds}}."""
    results: dict[str, dict[str, dict[str, QualityStats]]] = {key: {} for key in MODES}
    timings: dict[str, dict[str, float]] = {}
    out = out or sys.stdout
    for strategy in strategies:
        for key, choice in MODES.items():
            started = time.perf_counter()
            results[key][strategy] = {
                str(b): search_quality(evaluator, strategy, parse_budget(f"{b}trials"), seeds, workers=workers,
                                       early_stopping=choice) for b in budgets}
            timings.setdefault(strategy, {})[choice.value] = round(time.perf_counter() - started, 2)
        print(f"{strategy}: {len(seeds)} seeds x {len(budgets)} budgets in "
              + ", ".join(f"{t:.1f} s ({c})" for c, t in timings[strategy].items()), file=out, flush=True)
    return results, timings


def format_results(results: dict[str, dict[str, dict[str, QualityStats]]]) -> str:
    """One line per strategy and budget; per early-stopping choice: HV ratio (mean ± std) and device-hours."""
    header = f"{'strategy':<14} {'budget':>6}" + "".join(
        f"  {'HV ' + choice.value:>15} {'dev-h':>6}" for choice in MODES.values())
    lines = [header, "-" * len(header)]
    for strategy, by_budget in results["results"].items():
        for budget in by_budget:
            cells = [results[key][strategy][budget] for key in MODES]
            lines.append(f"{strategy:<14} {budget:>6}" + "".join(
                f"  {s.hv_ratio_mean:>7.3f} ± {s.hv_ratio_std:<5.3f} {s.device_h_mean:>6.3f}" for s in cells))
    return "\n".join(lines)


def run_equal_time(evaluator: TabularEvaluator, strategies: list[str], budgets: list[int], seeds: list[int],
                   workers: int, out: TextIO | None = None) -> dict[str, dict[str, EqualTimeResult]]:
    """{strategy: {budget: every early-stopping choice at the device time of that many full trials}}."""
    out = out or sys.stdout
    compared: dict[str, dict[str, EqualTimeResult]] = {}
    for strategy in strategies:
        started = time.perf_counter()
        compared[strategy] = {str(b): compare_at_equal_device_time(evaluator, strategy, b, seeds, workers=workers)
                              for b in budgets}
        print(f"{strategy} at equal device time: {time.perf_counter() - started:.1f} s", file=out, flush=True)
    return compared


def format_equal_time(compared: dict[str, dict[str, EqualTimeResult]]) -> str:
    """One line per strategy and budget: HV ratio per early-stopping choice, then mo-asha's paired differences."""
    choices = list(EarlyStopping)
    header = (f"{'strategy':<14} {'budget':>6} {'dev-h':>7}" + "".join(f"  {'HV ' + c.value:>15}" for c in choices)
              + "".join(f"  {'Δ ' + a.value + ' - ' + b.value + ' ± se (better/worse)':<36}" for a, b in COMPARED))
    lines = ["equal device time (budget = device time of N full trials):", header, "-" * len(header)]
    for strategy, by_budget in compared.items():
        for budget, r in by_budget.items():
            lines.append(f"{strategy:<14} {budget:>6} {r.budget.amount:>7.3f}" + "".join(
                f"  {r.stats[c].hv_ratio_mean:>7.3f} ± {r.stats[c].hv_ratio_std:<5.3f}" for c in choices) + "".join(
                f"  {f'{d.mean:+.3f} ± {d.stderr:.3f} ({d.better:.0%}/{d.worse:.0%})':<36}"
                for d in r.differences.values()))
    return "\n".join(lines)


def best_strategy(results: dict[str, dict[str, QualityStats]]) -> str:
    """The strategy with the highest HV ratio averaged over the budgets (default early stopping)."""
    return max(results, key=lambda s: sum(q.hv_ratio_mean for q in results[s].values()) / len(results[s]))


def write_png(path: str | Path, results: dict[str, dict[str, dict[str, QualityStats]]], seeds: int,
              compared: dict[str, EqualTimeResult] | None = None, compared_strategy: str = "") -> Path:
    shown = [s for per in results.values() for by_budget in per.values() for s in by_budget.values()]
    shown += [stats for r in (compared or {}).values() for stats in r.stats.values()]
    lowest = min(s.hv_ratio_mean - s.hv_ratio_std for s in shown)
    y_range = (max(0.0, math.floor(lowest * 10) / 10), 1.0)
    panels = [Panel(title=f"early stopping: {choice.value}" + (" (default)" if key == "results" else ""),
                    x_label="budget (evaluations)",
                    y_label=f"found / true hypervolume (mean ± std of {seeds} seeds)",
                    series=[Series(strategy, [(int(b), s.hv_ratio_mean, s.hv_ratio_std) for b, s in by_budget.items()])
                            for strategy, by_budget in results[key].items()], y_range=y_range)
              for key, choice in MODES.items()]
    if compared:
        panels.append(Panel(
            title=f"{compared_strategy} at equal device time", x_label="budget (device time of N full trials)",
            y_label=f"found / true hypervolume (mean ± std of {seeds} seeds)", y_range=y_range,
            series=[Series(choice.value, [(int(b), r.stats[choice].hv_ratio_mean, r.stats[choice].hv_ratio_std)
                                          for b, r in compared.items()]) for choice in EarlyStopping]))
    return save_line_chart(path, panels)


def against_random_at_double(results: dict[str, dict[str, QualityStats]]) -> dict[str, dict[str, float]]:
    """Per multi-objective strategy and budget B (where 2B was run too): its HV ratio at B minus
    random search's at 2B (>= 0: it matches random search with half the evaluations)."""
    random_search = results.get("random", {})
    return {s: {b: round(stats.hv_ratio_mean - random_search[str(2 * int(b))].hv_ratio_mean, 4)
                for b, stats in results[s].items() if str(2 * int(b)) in random_search}
            for s in MULTI_OBJECTIVE if s in results and random_search}


def table_provenance(path: Path, evaluator: TabularEvaluator) -> dict[str, Any]:
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), **evaluator.table.describe()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="searches per strategy and budget (seeds 0..N-1)")
    parser.add_argument("--json", default=DEFAULT_JSON, help=f"result file (default {DEFAULT_JSON})")
    parser.add_argument("--table", default=DEFAULT_TABLE, help=f"benchmark table (default {DEFAULT_TABLE})")
    parser.add_argument("--png", default=DEFAULT_PNG, help=f"HV ratio vs budget chart (default {DEFAULT_PNG})")
    parser.add_argument("--strategies", help="comma-separated subset (default: every strategy that can be built)")
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="comma-separated evaluation counts")
    parser.add_argument("--workers", type=int, default=4, help="trials running at once in the simulation")
    parser.add_argument("--equal-time-strategies",
                        help="comma-separated strategies compared at equal device time (default: every strategy run)")
    parser.add_argument("--no-equal-time", action="store_true", help="skip the equal-device-time comparison")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (ValueError, KeyError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.seeds < 1 or args.workers < 1:
        raise ValueError("--seeds and --workers must be >= 1")
    budgets = _positive_ints("--budgets", args.budgets)
    table_path = Path(args.table)
    evaluator = TabularEvaluator(load_table(table_path))
    table = evaluator.table
    if table.provenance.get("complete") is False:
        raise ValueError(f"benchmark table {table_path} is incomplete ({len(table)} of "
                         f"{table.provenance.get('architectures')} architectures): finish the build first")
    wanted = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    for name in wanted or []:
        if name not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {name!r}; choices: {', '.join(STRATEGY_NAMES)}")
    strategies, skipped = available_strategies(table.space, wanted)
    for name, why in skipped.items():
        print(f"skipping {name}: {why}")
    print(f"table {table_path}: {len(table)} rows, {table.epochs} epochs, true front of "
          f"{len(table.true_front())}; {args.seeds} seeds, budgets {budgets}, {args.workers} workers")
    seeds = list(range(args.seeds))
    equal_time_strategies = [] if args.no_equal_time else (
        [s.strip() for s in args.equal_time_strategies.split(",")] if args.equal_time_strategies else strategies)
    for name in equal_time_strategies:
        if name not in strategies:
            raise ValueError(f"--equal-time-strategies: {name!r} is not among the strategies run "
                             f"({', '.join(strategies)})")
    results, timings = run_benchmark(evaluator, strategies, budgets, seeds, args.workers)
    print(format_results(results))
    compared = run_equal_time(evaluator, equal_time_strategies, budgets, seeds, args.workers)
    best = best_strategy(results["results"])
    if compared:
        print(format_equal_time(compared))
    report = {
        "table": table_provenance(table_path, evaluator),
        **{key: {s: {b: stats.to_json() for b, stats in by_budget.items()} for s, by_budget in per.items()}
           for key, per in results.items()},
        "settings": {"budget": "evaluations (trials started)", "budgets": budgets, "seeds": seeds,
                     "workers": args.workers, "found_front": FOUND_FRONT_RULE,
                     "early_stopping": {key: choice.value for key, choice in MODES.items()},
                     "rungs": {"time_attr": "epoch", "grace_period": GRACE_EPOCHS,
                               "reduction_factor": REDUCTION_FACTOR, "max_t": table.epochs},
                     "std": "sample standard deviation over seeds"},
        "skipped": skipped,
        "seconds": timings,
        "multi_objective_minus_random_at_double_budget": against_random_at_double(results["results"]),
    }
    if compared:
        report["equal_device_time"] = {
            "budget": BUDGET_RULE, "full_trial_device_s": round(full_trial_seconds(table), 4),
            "best_strategy": best, "best_strategy_rule": "highest HV ratio averaged over the budgets in results",
            "results": {s: {b: r.to_json() for b, r in by_budget.items()} for s, by_budget in compared.items()}}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    if args.png:
        shown = best if best in compared else next(iter(compared), "")
        print(f"wrote {write_png(args.png, results, args.seeds, compared.get(shown), shown)}")
    return 0


def _positive_ints(flag: str, text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{flag} must be positive integers, got {text!r}")
    return values


if __name__ == "__main__":
    sys.exit(main())
