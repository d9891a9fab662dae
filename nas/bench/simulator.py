"""Whole searches replayed on a tabular benchmark in simulated time, with the real search logic.

What is real: the strategy (``nas.strategies.create_strategy``, ask/tell), the Tune searcher that
drives it (``StrategySearcher``: the space's seeds queued first, duplicates skipped, the budget
deciding whether another trial may start), the budget tracker (``BudgetTracker``), the
early-stopping scheduler (``create_scheduler``: the ``MOASHAScheduler``, Ray Tune's
``ASHAScheduler`` or ``FIFOScheduler`` objects), and the rule that turns a trial's reports into its status
(``final_status``).  What is simulated: Tune's event loop, reduced to the calls it makes on
those objects, and the trials themselves, answered by ``TabularEvaluator`` from the table.

The loop runs ``workers`` trials at once.  A trial's next report arrives after the device-seconds
the real trial spent on that step; the scheduler sees every report (then the searcher, unless the
scheduler stopped the trial, as Tune does); when a trial ends (stopped, last epoch, infeasible)
both hear ``on_trial_complete`` with its last result (a row recorded as failed: the scheduler's
``on_trial_error`` and the searcher's ``on_trial_complete(error=True)``), and the budget is
charged what the trial used: one trial for a trials budget, else its measurement plus the epochs
it ran, in device-hours (one device per trial).  Free workers then ask the searcher for new
trials.  An architecture without a row is a KeyError: simulate on complete tables.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from nas.bench.evaluator import TabularEvaluator, TabularStep
from nas.budget import Budget, BudgetTracker
from nas.objectives import SpeedLimits, SpeedObjective
from nas.search.recorder import Reused, final_status
from nas.search.scheduler import create_scheduler
from nas.search.settings import DEFAULT_EARLY_STOPPING, EarlyStopping
from nas.search.searcher import StrategySearcher
from nas.store.records import TrialStatus
from nas.strategies import create_strategy
from nas.trial.progress import TrialProgress
from search_spaces import Architecture

__all__ = ["SimulatedSearch", "SimulatedTrial", "simulate_search"]


@dataclass(frozen=True)
class SimulatedTrial:
    """One trial of a simulated search, as the store would have recorded it."""

    number: int  # 0-based, in start order
    arch: Architecture
    seed_name: str | None
    status: TrialStatus
    epochs_done: int
    accuracy: float | None  # best validation accuracy over the epochs it ran
    throughput: float | None
    started_s: float  # simulated clock
    finished_s: float
    device_s: float  # measurement + epochs run

    @property
    def point(self) -> tuple[float, float] | None:
        """(throughput, accuracy) of a trial that trained, else None."""
        if not self.status.feasible or self.accuracy is None:
            return None
        return self.throughput, self.accuracy


@dataclass(frozen=True)
class SimulatedSearch:
    strategy: str
    seed: int
    budget: Budget
    early_stopping: EarlyStopping
    workers: int
    trials: tuple[SimulatedTrial, ...]
    charged: float  # in the budget's unit
    wall_s: float  # simulated clock at the end

    @property
    def device_s(self) -> float:
        return sum(t.device_s for t in self.trials)

    def front_points(self, include_stopped: bool = False) -> list[tuple[float, float]]:
        """(throughput, accuracy) of completed trials, and of early-stopped ones if asked."""
        wanted = {TrialStatus.COMPLETED, TrialStatus.STOPPED} if include_stopped else {TrialStatus.COMPLETED}
        return [t.point for t in self.trials if t.status in wanted]

    def count(self, status: TrialStatus) -> int:
        return sum(t.status is status for t in self.trials)


@dataclass(eq=False)
class SimTrial:
    """What Tune's schedulers read from a trial: its id, config, status and last result."""

    trial_id: str
    config: dict[str, Any]
    status: str = "RUNNING"
    last_result: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class _Running:
    trial: SimTrial
    number: int
    arch: Architecture
    seed_name: str | None
    steps: Iterator[TabularStep]
    started_s: float
    device_s: float = 0.0
    progress: TrialProgress = field(default_factory=TrialProgress)


class _NoReuse:
    """A fresh search in an empty store: nothing to reuse."""

    def reuse(self, arch: Architecture, seed_name: str | None) -> Reused | None:
        return None


def _make_config(arch: Architecture, seed_name: str | None) -> dict[str, Any]:
    return {"arch": arch.to_dict(), "seed_name": seed_name}


def simulate_search(evaluator: TabularEvaluator, strategy: str, budget: Budget, *, seed: int = 0,
                    workers: int = 4, early_stopping: EarlyStopping | str = DEFAULT_EARLY_STOPPING,
                    objective: SpeedObjective | str = SpeedObjective.THROUGHPUT,
                    strategy_options: dict[str, Any] | None = None, with_seeds: bool = True) -> SimulatedSearch:
    """Run one search of ``strategy`` over the table's space to the end of ``budget``."""
    early_stopping = EarlyStopping.parse(early_stopping)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    space = evaluator.table.space
    tracker = BudgetTracker(budget)
    searcher = StrategySearcher(
        create_strategy(strategy, space, seed=seed, speed=objective, limits=SpeedLimits.of(evaluator.measure),
                        **(strategy_options or {})), tracker, _NoReuse(), _make_config,
        queued=space.seeds() if with_seeds else ())
    scheduler = create_scheduler(early_stopping, evaluator.table.epochs, objective)
    events: list[tuple[float, int, str, TabularStep]] = []  # (time, tie-break, trial id, step)
    order = itertools.count()
    running: dict[str, _Running] = {}
    done: list[SimulatedTrial] = []
    clock = 0.0

    def schedule_next(run: _Running) -> bool:
        step = next(run.steps, None)
        if step is not None:
            heapq.heappush(events, (clock + step.seconds, next(order), run.trial.trial_id, step))
        return step is not None

    def start_trials() -> None:
        while len(running) < workers and not searcher.finished:
            number = len(done) + len(running)
            trial_id = f"sim_{number:05d}"
            config = searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return
            arch = Architecture.from_dict(config["arch"])
            run = _Running(SimTrial(trial_id, config), number, arch, config["seed_name"],
                           evaluator.reports(arch), clock)
            scheduler.on_trial_add(None, run.trial)
            running[trial_id] = run
            if not schedule_next(run):  # a trial without reports ends at once
                finish(run)

    def finish(run: _Running, error: bool = False) -> None:
        run.trial.status = "ERROR" if error else "TERMINATED"
        del running[run.trial.trial_id]
        if error:  # as Tune's controller on a trial that raised
            scheduler.on_trial_error(None, run.trial)
            searcher.on_trial_complete(run.trial.trial_id, error=True)
        else:
            scheduler.on_trial_complete(None, run.trial, run.trial.last_result)
            searcher.on_trial_complete(run.trial.trial_id, result=run.trial.last_result)
        tracker.charge_trial(run.device_s, 1.0)
        status = TrialStatus.FAILED if error else final_status(run.progress, evaluator.table.epochs)
        done.append(SimulatedTrial(
            number=run.number, arch=run.arch, seed_name=run.seed_name, status=status,
            epochs_done=run.progress.epochs_done, accuracy=run.progress.best_accuracy,
            throughput=run.progress.throughput,
            started_s=run.started_s, finished_s=clock, device_s=run.device_s))

    start_trials()
    while events:
        clock, _, trial_id, step = heapq.heappop(events)
        run = running[trial_id]
        run.device_s += step.seconds
        if step.error is not None:
            finish(run, error=True)
            start_trials()
            continue
        run.progress.observe(step.result)
        decision = scheduler.on_trial_result(None, run.trial, step.result)
        if decision != TrialScheduler.STOP:
            searcher.on_trial_result(trial_id, step.result)
        run.trial.last_result = step.result
        if decision == TrialScheduler.STOP or not schedule_next(run):
            finish(run)
            start_trials()
    return SimulatedSearch(strategy=strategy, seed=seed, budget=budget, early_stopping=early_stopping,
                           workers=workers, trials=tuple(sorted(done, key=lambda t: t.number)),
                           charged=tracker.charged, wall_s=clock)
