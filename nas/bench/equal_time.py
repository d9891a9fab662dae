"""Early-stopping choices compared at equal device time on a tabular benchmark.

A trials budget counts trials started, so it charges an early-stopped trial like a full one and
hides what early stopping buys: device time for more trials.  Here every choice (``mo-asha``,
``asha``, ``none``) gets the same device-time budget, the device time of ``n`` full trials (``n``
x the mean device-seconds of the table's completed rows: measurement plus every epoch), and the
found fronts are compared by hypervolume ratio (completed trials only, as in
``nas.bench.quality``).  The same seeds drive every choice, so per-seed differences are reported
with their standard error and the share of seeds on which the first choice did better.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from nas.bench.evaluator import TabularEvaluator
from nas.bench.quality import QualityStats, summarise_searches
from nas.bench.simulator import simulate_search
from nas.bench.table import BenchTable
from nas.budget import Budget
from nas.search.settings import EarlyStopping

__all__ = ["BUDGET_RULE", "COMPARED", "EqualTimeResult", "PairedDifference", "compare_at_equal_device_time",
           "device_time_budget", "full_trial_seconds"]

BUDGET_RULE = ("device time of N full trials: N x the mean device-seconds of the table's completed rows "
               "(measurement + every epoch); a search overshoots it by at most the trials in flight")
# (a, b): reported as the per-seed HV ratio of a minus b
COMPARED = ((EarlyStopping.MO_ASHA, EarlyStopping.NONE), (EarlyStopping.MO_ASHA, EarlyStopping.ASHA))


def full_trial_seconds(table: BenchTable) -> float:
    """Mean device-seconds of a trial trained to the end (the table's completed rows)."""
    return float(statistics.fmean(e.cost_s() for e in table.completed))


def device_time_budget(table: BenchTable, trials: int) -> Budget:
    """The device time of ``trials`` full trials, as a device-hours budget."""
    kind = "gpu" if str(table.provenance.get("device_kind", "")).startswith("cuda") else "cpu"
    return Budget(kind, trials * full_trial_seconds(table) / 3600.0, f"device time of {trials} full trials")


@dataclass(frozen=True)
class PairedDifference:
    """HV ratio of one choice minus another's, seed by seed."""

    mean: float
    stderr: float  # of the mean, over seeds
    better: float  # share of seeds where the first choice's HV ratio is higher
    worse: float  # ... lower (the rest are ties)

    @classmethod
    def of(cls, first: Sequence[float], second: Sequence[float]) -> "PairedDifference":
        diffs = [a - b for a, b in zip(first, second, strict=True)]
        stderr = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
        return cls(mean=statistics.fmean(diffs), stderr=stderr, better=sum(d > 1e-12 for d in diffs) / len(diffs),
                   worse=sum(d < -1e-12 for d in diffs) / len(diffs))

    def to_json(self, digits: int = 4) -> dict[str, float]:
        return {k: round(v, digits) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EqualTimeResult:
    """One strategy at one device-time budget: statistics per early-stopping choice and the paired differences."""

    budget: Budget
    stats: dict[EarlyStopping, QualityStats]
    differences: dict[tuple[EarlyStopping, EarlyStopping], PairedDifference]

    def to_json(self) -> dict[str, Any]:
        return {"device_h": round(self.budget.amount, 6),
                **{choice.value: stats.to_json() for choice, stats in self.stats.items()},
                "differences": {f"{a.value} - {b.value}": d.to_json() for (a, b), d in self.differences.items()}}


def compare_at_equal_device_time(evaluator: TabularEvaluator, strategy: str, trials: int, seeds: Sequence[int], *,
                                 workers: int = 4) -> EqualTimeResult:
    """Simulate ``strategy`` with every early-stopping choice at the device time of ``trials`` full trials."""
    budget = device_time_budget(evaluator.table, trials)
    stats, ratios = {}, {}
    for choice in EarlyStopping:
        searches = [simulate_search(evaluator, strategy, budget, seed=seed, workers=workers, early_stopping=choice)
                    for seed in seeds]
        stats[choice] = summarise_searches(evaluator, searches)
        ratios[choice] = [evaluator.table.hv_ratio(s.front_points()) for s in searches]
    differences = {(a, b): PairedDifference.of(ratios[a], ratios[b]) for a, b in COMPARED}
    return EqualTimeResult(budget=budget, stats=stats, differences=differences)
