"""A store holding one big finished search, written in a minute or two without Ray: the dashboard check
at 10,000 trials needs the store, not the pool.

    python -m benchmarks.scale.fill sqlite:///big.db --trials 10000 [--name scale-fill]

The trials are those of a simulated search of the synthetic table (``nas.bench.simulator``: the real
strategy, searcher, MO-ASHA and budget, with Tune's loop reduced to its calls), written by the real
``SearchRecorder`` from the reports each trial sent (its measurement, its epochs, its failure), one
trial after another, so the rows are what a search writes: statuses, epochs, device-hours, errors.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nas.bench import TabularEvaluator
from nas.bench.simulator import simulate_search
from nas.budget import BudgetTracker, parse_budget
from nas.search.recorder import SearchRecorder
from nas.objectives import SpeedObjective
from nas.search.settings import EarlyStopping, Resources, SearchSettings
from nas.store import SearchStatus, TrialStatus, open_store
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe

from benchmarks.scale.table import EPOCHS, scale_space, scale_table

MAX_LATENCY_MS = 5.0  # as the benchmark's searches
WORKERS = 64


class _Clock:
    """The recorder's clock: advanced by hand to each report's simulated time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fill_store(url: str, trials: int, name: str = "scale-fill", seed: int = 0) -> int:
    """Write one finished search of ``trials`` simulated trials to the store at ``url``; returns the rows written."""
    space = scale_space()
    measure = MeasureSettings.defaults_for(True, target_res=space.target_res, max_latency_ms=MAX_LATENCY_MS)
    evaluator = TabularEvaluator(scale_table(space), measure)
    settings = SearchSettings(space=space.name, strategy="mo-evolution", seed=seed,
                              recipe=ProxyRecipe(img_size=space.proxy_res, seed=seed, epochs=EPOCHS), measure=measure,
                              early_stopping=EarlyStopping.MO_ASHA, objective=SpeedObjective.THROUGHPUT)
    budget = parse_budget(f"{trials}trials")
    simulated = simulate_search(evaluator, settings.strategy, budget, seed=seed, workers=WORKERS)
    store = open_store(url, create=True)
    try:
        search = store.create_search(
            name, space=space.name, space_description=space.describe(),
            config={**settings.to_config(), **Resources(1.0, 1.0, WORKERS, None).to_config()},
            budget_kind=budget.unit, budget_total=budget.amount, budget_text=budget.text,
            device_kind="cuda:simulated GPU")
        clock = _Clock()
        recorder = SearchRecorder(store, search, BudgetTracker(budget), artifacts_dir=Path("/nonexistent"),
                                  recipe=settings.recipe, measure=measure, gpus_per_trial=1.0, cpus_per_trial=1.0,
                                  device_kind=search.device_kind, out=None, clock=clock)
        for trial in simulated.trials:
            tune_id = f"fill_{trial.number:05d}"
            config = {"arch": trial.arch.to_dict(), "recipe": settings.recipe.to_dict(), "seed_name": trial.seed_name}
            clock.now = trial.started_s
            recorder.trial_started(tune_id, config)
            failed, error = trial.status == TrialStatus.FAILED, None
            for step in evaluator.reports(trial.arch):
                clock.now += step.seconds
                if step.error is not None:
                    error = step.error
                    break
                recorder.trial_result(tune_id, step.result)
                if not failed and step.result.get("epoch", 0) >= trial.epochs_done:
                    break  # its last report: trained out, stopped by MO-ASHA or infeasible
            if error is not None:
                recorder.trial_failed(tune_id, config, f"ReplayedTrialError: {error}")
            else:
                recorder.trial_completed(tune_id, None)
        recorder.finish(SearchStatus.FINISHED)
        return len(simulated.trials)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale.fill", description=__doc__.split("\n\n")[0])
    parser.add_argument("db", help="store URL, e.g. sqlite:///big.db (a new search is added to it)")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--name", default="scale-fill")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = fill_store(args.db, args.trials, args.name)
    print(f"wrote {rows} trials of search {args.name!r} to {args.db} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
