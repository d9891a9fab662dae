"""Search quality on a tabular benchmark: the hypervolume a strategy's simulated searches find,
as a share of the table's true front, over several seeds.

Which trials make the *found front*: the completed ones (trained for every epoch), at their best
validation accuracy.  The table's true front is made of final-fidelity results too, so the ratio
compares like with like; an early-stopped trial's accuracy comes from fewer epochs, a number the
search itself judged not worth finishing, and the dashboard's default front shows only trials that
reached the final fidelity.  The ratio counting early-stopped trials as well (at the best accuracy
of the epochs they ran; never above their final accuracy, so the ratio stays <= 1) is reported
beside it as ``hv_ratio_with_stopped``.  Without early stopping both are equal.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from nas.bench.evaluator import TabularEvaluator
from nas.bench.simulator import SimulatedSearch, simulate_search
from nas.budget import Budget
from nas.search.settings import DEFAULT_EARLY_STOPPING, EarlyStopping
from nas.store.records import TrialStatus

__all__ = ["FOUND_FRONT_RULE", "QualityStats", "search_quality", "summarise_searches"]

FOUND_FRONT_RULE = ("hv_ratio: completed trials only (every epoch trained), at their best validation accuracy; "
                    "hv_ratio_with_stopped: early-stopped trials too, at the best accuracy of the epochs they ran")


@dataclass(frozen=True)
class QualityStats:
    """Mean and sample standard deviation over seeds of one strategy at one budget."""

    hv_ratio_mean: float
    hv_ratio_std: float
    seeds: int
    hv_ratio_with_stopped_mean: float
    hv_ratio_with_stopped_std: float
    trials_mean: float
    completed_mean: float
    stopped_mean: float
    infeasible_mean: float
    device_h_mean: float  # device-hours the search charged (measurements + epochs run)

    def to_json(self, digits: int = 4) -> dict[str, Any]:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarise_searches(evaluator: TabularEvaluator, searches: Sequence[SimulatedSearch]) -> QualityStats:
    """Quality statistics of finished simulated searches (one per seed) over ``evaluator``'s table."""
    if not searches:
        raise ValueError("no searches to summarise")
    table = evaluator.table
    ratios = [table.hv_ratio(s.front_points()) for s in searches]
    with_stopped = [table.hv_ratio(s.front_points(include_stopped=True)) for s in searches]

    def mean_of(values: Sequence[float]) -> float:
        return float(statistics.fmean(values))

    return QualityStats(
        hv_ratio_mean=mean_of(ratios), hv_ratio_std=_std(ratios), seeds=len(searches),
        hv_ratio_with_stopped_mean=mean_of(with_stopped), hv_ratio_with_stopped_std=_std(with_stopped),
        trials_mean=mean_of([len(s.trials) for s in searches]),
        completed_mean=mean_of([s.count(TrialStatus.COMPLETED) for s in searches]),
        stopped_mean=mean_of([s.count(TrialStatus.STOPPED) for s in searches]),
        infeasible_mean=mean_of([s.count(TrialStatus.INFEASIBLE) for s in searches]),
        device_h_mean=mean_of([s.device_s / 3600.0 for s in searches]))


def search_quality(evaluator: TabularEvaluator, strategy: str, budget: Budget, seeds: Sequence[int], *,
                   workers: int = 4, early_stopping: EarlyStopping | str = DEFAULT_EARLY_STOPPING) -> QualityStats:
    """Simulate ``strategy`` once per seed at ``budget`` and summarise the searches."""
    searches = [simulate_search(evaluator, strategy, budget, seed=seed, workers=workers,
                                early_stopping=early_stopping) for seed in seeds]
    return summarise_searches(evaluator, searches)


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation; 0 for a single value."""
    return float(statistics.stdev(values)) if len(values) > 1 else 0.0
