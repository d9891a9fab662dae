"""Optuna's NSGA-II and multi-objective TPE (MOTPE) behind the ``Strategy`` interface, via ask/tell.

Each strategy keeps an in-memory Optuna study; the store stays the source of truth, and a resumed
search rebuilds the study by telling it the stored outcomes (``replay_stored_trials``).  The
space becomes one ``CategoricalDistribution`` per label of ``space.choices()`` (stage mixer,
depth and width); ``study.ask`` proposes a value for each.

What the study is told: a trained trial is COMPLETE with values (accuracy, speed objective),
both maximised (``Outcome.values``); a failed one is FAIL, which both samplers ignore.  With
speed limits, every COMPLETE trial carries one constraint, ``Outcome.violation`` (0 feasible,
> 0 how far outside), so both samplers apply constraint-domination (an infeasible trial is told
accuracy 0 and its measured speed, which the constraint makes irrelevant); a proposal the speed
predictor skips is told the same way with its predicted speed.  A proposal that is invalid in
the space or already seen (TPE re-proposes its favourites often in a small space) is told FAIL
and replaced by the nearest valid unseen architecture (one choice away, else two); when there is
none, the sampler is asked again, up to ``max_retries`` times, then a random unseen architecture
is proposed.  Outcomes of architectures the study did
not propose (seeds, stored results on resume, the random fallback) are enqueued, asked with
their parameters fixed and told, so the study records them as it records its own proposals.

Determinism: the sampler is rebuilt before every ask, seeded from the strategy's ``rng`` (which
``Strategy.ask`` reseeds from the seed, the number of outcomes told and the number of proposals
in flight), so its proposal depends only on those and the study's finished trials.  A resumed
search that tells the same outcomes in the same order therefore proposes what the uninterrupted
one would have (for NSGA-II, added trials are assigned their generation as asked ones are).
"""
from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from nas.objectives import Outcome
from nas.strategies.base import Strategy
from search_spaces import Architecture, SearchSpace

__all__ = ["MotpeStrategy", "Nsga2Strategy"]

CONSTRAINT = "speed_limits"
NEIGHBOURHOOD = 2  # choices a replacement for a duplicate proposal may differ in
MAX_VIOLATION = 1e6  # an unmeasured infeasible trial: far outside, but a finite number for Optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _OptunaStrategy(Strategy):
    """Drives an in-memory multi-objective Optuna study whose sampler ``_make_sampler`` builds."""

    def __init__(self, space: SearchSpace, seed: int = 0, max_retries: int = 100, **options: Any):
        super().__init__(space, seed, **options)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"strategy {self.name!r}: max_retries must be an int >= 1, got {max_retries!r}")
        self.max_retries = max_retries
        self.distributions = {label: CategoricalDistribution(values) for label, values in space.choices().items()}
        self._asked: dict[Architecture, optuna.Trial] = {}  # proposed, not told yet
        self.study = optuna.create_study(directions=["maximize", "maximize"], sampler=self._sampler())

    @abstractmethod
    def _make_sampler(self, seed: int) -> BaseSampler:
        """A fresh sampler with this seed."""

    def _sampler(self) -> BaseSampler:
        """A fresh sampler seeded from ``rng`` (reseeded before every proposal by ``Strategy.ask``)."""
        seed = self.rng.getrandbits(32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return self._make_sampler(seed)

    def _propose(self) -> Architecture | None:
        for _ in range(self.max_retries):
            self.study.sampler = self._sampler()
            trial = self.study.ask(self.distributions)
            arch = self.space.arch_from_choices(trial.params)
            if not self.is_seen(arch) and self.space.is_valid(arch):
                self._asked[arch] = trial
                return arch
            self.study.tell(trial, state=TrialState.FAIL)
            nearest = self._nearest_unseen(arch)
            if nearest is not None:
                return nearest
        return self._random_unseen()

    def _nearest_unseen(self, arch: Architecture) -> Architecture | None:
        """A valid unseen architecture one choice away from ``arch``, else two; None if there is none."""
        frontier = [arch]
        for _ in range(NEIGHBOURHOOD):
            following = []
            for member in frontier:
                for child in self.space.mutations(member, self.rng):
                    if not self.is_seen(child):
                        return child
                    following.append(child)
            frontier = following
        return None

    def _on_skipped(self, arch: Architecture) -> None:
        trial = self._asked.pop(arch, None)
        prediction = self.predictor.predict(arch, with_errors=False) if self.predictor is not None else None
        if trial is None or prediction is None:
            return
        self._finish(trial, Outcome.infeasible(prediction.throughput, prediction.latency_ms))

    def _learn(self, arch: Architecture, outcome: Outcome | None) -> None:
        trial = self._asked.pop(arch, None)
        if trial is not None:
            self._finish(trial, outcome)
            return
        if self._values(outcome) is None or not self.space.is_valid(arch):
            return
        # Enqueued, then asked with its parameters fixed: the study records it as it records its
        # own proposals, without sampling anything.
        self.study.enqueue_trial(self.space.choices_of(arch))
        trial = self.study.ask(self.distributions)
        self._after_add(self.study.get_trials(deepcopy=False)[-1])
        self._finish(trial, outcome)

    def _after_add(self, trial: optuna.trial.FrozenTrial) -> None:
        """Bookkeeping the sampler does when it samples a trial, done for a trial with fixed parameters."""

    def _finish(self, trial: optuna.Trial, outcome: Outcome | None) -> None:
        told = self._values(outcome)
        if told is None:
            self.study.tell(trial, state=TrialState.FAIL)
            return
        values, violation = told
        if violation is not None:
            trial.set_constraint(CONSTRAINT, violation)
        self.study.tell(trial, list(values))

    def _values(self, outcome: Outcome | None) -> tuple[tuple[float, float], float | None] | None:
        """(objective values, constraint value or None without limits), or None for a FAIL."""
        if outcome is None:
            return None
        if outcome.feasible:
            values = outcome.values(self.speed)
            return None if values is None else (values, 0.0 if self.limits.any else None)
        if not self.limits.any:  # infeasible under limits this study was not given: nothing to rank it by
            return None
        speed = outcome.speed_value(self.speed)
        return (0.0, 0.0 if speed is None else speed), min(outcome.violation(self.limits), MAX_VIOLATION)


class Nsga2Strategy(_OptunaStrategy):
    """Optuna's ``NSGAIISampler``: generations of ``population_size``, uniform crossover, mutation.

    Generations of 10, not Optuna's 50: searches here run 50-200 trials, and on a MixerBench-shaped
    table 10 found more hypervolume than 20 at every budget (``benchmarks/synthetic_mixerbench.py``).
    """

    name = "nsga2"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 10, max_retries: int = 100,
                 **options: Any):
        if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"strategy 'nsga2': population_size must be an int >= 2, got {population_size!r}")
        self.population_size = population_size
        super().__init__(space, seed, max_retries=max_retries, **options)

    def _make_sampler(self, seed: int) -> BaseSampler:
        return _FixedSpaceNSGAII(self.distributions, population_size=self.population_size, seed=seed)

    def _after_add(self, trial: optuna.trial.FrozenTrial) -> None:
        self.study.sampler.get_trial_generation(self.study, trial)


class MotpeStrategy(_OptunaStrategy):
    """Optuna's ``TPESampler`` on a two-objective study (MOTPE, Ozaki et al. 2022), constraint-aware."""

    name = "motpe"

    def __init__(self, space: SearchSpace, seed: int = 0, n_startup_trials: int = 10, multivariate: bool = True,
                 max_retries: int = 100, **options: Any):
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int) or n_startup_trials < 1:
            raise ValueError(f"strategy 'motpe': n_startup_trials must be an int >= 1, got {n_startup_trials!r}")
        if not isinstance(multivariate, bool):
            raise ValueError(f"strategy 'motpe': multivariate must be true or false, got {multivariate!r}")
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate
        super().__init__(space, seed, max_retries=max_retries, **options)

    def _make_sampler(self, seed: int) -> BaseSampler:
        return _FixedSpaceTPE(self.distributions if self.multivariate else {}, n_startup_trials=self.n_startup_trials,
                              multivariate=self.multivariate, seed=seed)


# Every trial of these studies asks the same distributions, so the relative search space, which the
# samplers would otherwise recompute from every finished trial at every ask (the intersection of
# their spaces, 75 % of a 400-trial NSGA-II search's time), is known up front: the multi-valued ones.


class _FixedSpaceNSGAII(NSGAIISampler):
    def __init__(self, search_space: dict[str, BaseDistribution], **options: Any):
        super().__init__(**options)
        self._fixed_space = {name: d for name, d in search_space.items() if not d.single()}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._fixed_space)

    def get_parent_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        """The parents in trial order.  Optuna returns them in selection order when it selects them and
        in trial order when it reads them back from its cache, so the first child of a generation would
        depend on whether this sampler (or a resumed one) selected them: crossover picks parents by
        position."""
        return sorted(super().get_parent_population(study, generation), key=lambda t: t.number)


class _FixedSpaceTPE(TPESampler):
    def __init__(self, search_space: dict[str, BaseDistribution], **options: Any):
        super().__init__(**options)
        self._fixed_space = {name: d for name, d in search_space.items() if not d.single()}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._fixed_space)
