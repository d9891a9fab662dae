"""Our ask/tell strategies behind Tune's ``Searcher`` interface, with seeds, reuse and the budget.

Order of proposals: the queued architectures first (the space's hand-designed seeds; on
``--resume`` also the architectures whose trials the killed driver left unfinished), then
whatever the strategy asks for.  Before a proposal becomes a trial, the recorder looks for an
earlier result of the same architecture, recipe, device kind and measurement protocol; a hit
is recorded as a free trial and told to the strategy instead of being trained again.

What a strategy is told about a trial is its ``TrialProgress.outcome`` (accuracy and measured
speed, or infeasible with the measured speed), or None when the trial raised.  With
``defer_failures`` (the driver wires it to the recorder), a failed trial waits for the
recorder's verdict (``resolve_failure``, in the same Tune step): a trial lost with its Ray worker
or node is queued again first and its strategy told nothing; any other failure is told None.

The budget decides whether another trial may start (``BudgetTracker.can_start``, counting
suggested-but-unfinished trials as in flight); when it cannot and nothing is in flight, or
when the strategy has nothing left to propose, ``suggest`` returns ``Searcher.FINISHED``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

from ray.tune.search import Searcher

from nas.budget import BudgetTracker
from nas.search.recorder import Reused
from nas.strategies import Strategy
from nas.trial.progress import TrialProgress
from search_spaces import Architecture

# Consecutive proposals that are all duplicates or reused before the searcher stops asking.
MAX_SKIPPED_PROPOSALS = 10_000


class Reuser(Protocol):
    def reuse(self, arch: Architecture, seed_name: str | None) -> Reused | None: ...


class StrategySearcher(Searcher):
    """Tune searcher: queued architectures first, then ``strategy.ask()``; results go to ``strategy.tell``."""

    def __init__(self, strategy: Strategy, tracker: BudgetTracker, reuser: Reuser,
                 make_config: Callable[[Architecture, str | None], dict[str, Any]],
                 queued: Iterable[tuple[str | None, Architecture]] = (), exclude: Iterable[Architecture] = ()):
        super().__init__(metric="val_accuracy", mode="max")
        self.strategy = strategy
        self.tracker = tracker
        self.reuser = reuser
        self.make_config = make_config
        self.queue = list(queued)
        self.proposed: set[Architecture] = set(exclude)
        for _, arch in self.queue:
            strategy.mark_seen(arch)
        self.live: dict[str, Architecture] = {}
        self.seed_names: dict[str, str | None] = {}
        self.progress: dict[str, TrialProgress] = {}
        self.finished = False
        self.defer_failures = False
        self._failed: dict[str, tuple[str | None, Architecture]] = {}  # awaiting ``resolve_failure``
        self._requeued: set[Architecture] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its config for its own restore, which this project does not use
        # (``--resume`` rebuilds the searcher from the store); the live strategy stays out.
        return {"_metric": self._metric, "_mode": self._mode}

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.finished:
            return Searcher.FINISHED
        if not self.tracker.can_start(len(self.live)):
            return self._wait_or_finish()
        for _ in range(MAX_SKIPPED_PROPOSALS):
            proposal = self._next_proposal()
            if proposal is None:
                return self._wait_or_finish()
            seed_name, arch = proposal
            if arch in self.proposed and arch not in self._requeued:
                continue
            self._requeued.discard(arch)
            self.proposed.add(arch)
            reused = self.reuser.reuse(arch, seed_name)
            if reused is not None:
                self.strategy.tell(arch, reused.outcome)
                continue
            self.live[trial_id] = arch
            self.seed_names[trial_id] = seed_name
            self.progress[trial_id] = TrialProgress()
            return self.make_config(arch, seed_name)
        return self._finish()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.progress:
            self.progress[trial_id].observe(result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        arch = self.live.pop(trial_id, None)
        seed_name = self.seed_names.pop(trial_id, None)
        progress = self.progress.pop(trial_id, TrialProgress())
        if arch is None:
            return
        if error and self.defer_failures:
            self._failed[trial_id] = (seed_name, arch)
            return
        if result:
            progress.observe(result)
        self.strategy.tell(arch, None if error else progress.outcome)

    def resolve_failure(self, trial_id: str, lost: bool) -> None:
        """The recorder's verdict on a failed trial: ``lost`` with its worker or node (queued again,
        ahead of everything) or failed on its own (the strategy learns it failed)."""
        seed_name, arch = self._failed.pop(trial_id, (None, None))
        if arch is None:
            return
        if lost:
            self.queue.insert(0, (seed_name, arch))
            self._requeued.add(arch)
        else:
            self.strategy.tell(arch, None)

    def _next_proposal(self) -> tuple[str | None, Architecture] | None:
        if self.queue:
            return self.queue.pop(0)
        arch = self.strategy.ask()
        return None if arch is None else (None, arch)

    def _wait_or_finish(self) -> str | None:
        """Nothing to start now: wait for in-flight trials (they may free budget or inform the strategy)."""
        return None if self.live or self._failed else self._finish()

    def _finish(self) -> str:
        self.finished = True
        return Searcher.FINISHED
