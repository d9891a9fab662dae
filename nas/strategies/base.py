"""The ask/tell contract every search strategy follows, and the bookkeeping they share."""
from __future__ import annotations

import inspect
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from nas.objectives import Outcome, SpeedLimits, SpeedObjective, parse_objective
from nas.strategies.speed_predictor import SpeedPredictor
from search_spaces import Architecture, SearchSpace

__all__ = ["Strategy"]

# Proposals in a row predicted far outside the speed limits before the least-bad one is handed out.
MAX_SKIPPED_PROPOSALS = 100
# Leave-one-out errors of the speed prediction allowed before a candidate counts as outside a limit.
# 0: skip whatever is predicted over a limit.  Simulated on a MixerBench-shaped table with the limit
# at the median latency (benchmarks/predictor.py), 0.5 and 1 let 1.5-2x more infeasible trials
# through after the first 20 and found no more hypervolume; a wrong prediction still gets tried
# (the least-bad skipped candidate, when nothing else is left).
PREDICTION_TOLERANCE = 0.0


class Strategy(ABC):
    """Proposes architectures one at a time and learns from their outcomes.

    Contract with the driver:

    - ``ask()`` returns a valid architecture never proposed, told or marked seen before, or
      None when nothing new can be proposed right now.  With trials still in flight, a later
      ``ask()`` may succeed again; with none in flight, None means the search is over.
    - ``tell(arch, outcome)`` reports a finished trial: an ``Outcome`` (trained: accuracy and
      measured speed; infeasible: measured speed only, never learned from as good), or None for
      a failed trial (never proposed again, never learned from).  Architectures the strategy did
      not propose (seeds, earlier results) may be told too.
    - ``mark_seen(arch)`` excludes an architecture evaluated elsewhere (an earlier search, a
      resumed one) without an outcome to learn from.

    Reproducible: before each proposal ``rng`` is reseeded from the seed, the number of outcomes
    told and the number of proposals in flight, so a strategy told the same outcomes in the same
    order (a resumed search replaying the store) proposes what the uninterrupted one would have.

    Objectives: accuracy and ``speed`` (``SpeedObjective``), both maximised; single-objective
    strategies use the accuracy alone.  With speed ``limits``, a strategy that takes them
    (``takes_constraints``) fits a ``SpeedPredictor`` on every measured outcome and skips
    proposals predicted far outside the limits; one that cannot refuses to be built.
    """

    name: ClassVar[str]
    takes_constraints: ClassVar[bool] = True
    skips_predicted_infeasible: ClassVar[bool] = True

    def __init__(self, space: SearchSpace, seed: int = 0, *, speed: SpeedObjective | str = SpeedObjective.THROUGHPUT,
                 limits: SpeedLimits | None = None, predict_speed: bool = True, **options: Any):
        if options:
            raise ValueError(f"strategy {self.name!r}: unknown option(s) {sorted(options)}; "
                             f"accepted: {self.option_names() or 'none'}")
        limits = limits or SpeedLimits()
        if limits.any and not self.takes_constraints:
            raise ValueError(f"strategy {self.name!r} cannot take speed limits (--max-latency-ms/--min-throughput): "
                             f"{self.constraint_refusal()}")
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.speed = parse_objective(speed)
        self.limits = limits
        self.predictor = SpeedPredictor(space) if (predict_speed and limits.any
                                                   and self.skips_predicted_infeasible) else None
        self._seen: set[Architecture] = set()
        self._pending: set[Architecture] = set()  # asked, no result yet
        self._skipped: set[Architecture] = set()  # predicted far outside the limits, not handed out
        self._told_count = 0
        self.skipped_count = 0  # proposals skipped so far (reports)

    @classmethod
    def option_names(cls) -> list[str]:
        """Keyword options this strategy accepts besides ``space``, ``seed`` and the objectives."""
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name not in ("self", "space", "seed", "speed", "limits", "predict_speed")
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @classmethod
    def constraint_refusal(cls) -> str:
        """Why this strategy cannot take speed limits (only asked when ``takes_constraints`` is False)."""
        return "it has no way to learn from infeasible trials"

    def ask(self) -> Architecture | None:
        for attempt in range(MAX_SKIPPED_PROPOSALS):
            self.rng.seed(f"{self.seed}/{self._told_count}/{len(self._pending)}/{attempt}")
            arch = self._propose()
            if arch is None:
                break
            if arch in self._seen:
                raise RuntimeError(f"strategy {self.name!r} proposed an already seen architecture {arch.label()}")
            self._seen.add(arch)
            if self._predicted_excess(arch) > 0:
                self._skipped.add(arch)
                self.skipped_count += 1
                self._on_skipped(arch)
                continue
            self._pending.add(arch)
            return arch
        if not self._skipped:
            return None
        # Everything proposed lately (or everything left) is predicted too slow: try the least bad,
        # in case the prediction is wrong; its measurement improves the predictor either way.
        arch = min(self._skipped, key=lambda a: (self._predicted_excess(a), a.hash))
        self._skipped.discard(arch)
        self._pending.add(arch)
        return arch

    def tell(self, arch: Architecture, outcome: Outcome | None) -> None:
        if outcome is not None and not isinstance(outcome, Outcome):
            raise ValueError(f"outcome must be an Outcome, or None for a failed trial; got {outcome!r}")
        self._seen.add(arch)
        self._pending.discard(arch)
        self._skipped.discard(arch)
        self._told_count += 1
        if self.predictor is not None and outcome is not None and outcome.measured:
            self.predictor.observe(arch, outcome.latency_ms, outcome.throughput)
        self._learn(arch, outcome)

    def mark_seen(self, arch: Architecture) -> None:
        self._seen.add(arch)
        self._skipped.discard(arch)

    def is_seen(self, arch: Architecture) -> bool:
        return arch in self._seen

    @property
    def num_pending(self) -> int:
        """Architectures asked for and not yet told."""
        return len(self._pending)

    @abstractmethod
    def _propose(self) -> Architecture | None:
        """A valid, unseen architecture, or None."""

    def _learn(self, arch: Architecture, outcome: Outcome | None) -> None:
        """React to a result (``arch`` is already marked seen); strategies without a model ignore it."""

    def _on_skipped(self, arch: Architecture) -> None:
        """``arch``, just proposed, was predicted far outside the limits and will not be tried now."""

    def _predicted_excess(self, arch: Architecture) -> float:
        if self.predictor is None:
            return 0.0
        prediction = self.predictor.predict(arch, with_errors=PREDICTION_TOLERANCE > 0)
        return 0.0 if prediction is None else prediction.beyond(self.limits, PREDICTION_TOLERANCE)

    def _random_unseen(self, tries: int = 64) -> Architecture | None:
        """A uniform valid sample not seen yet; once samples keep colliding, the first unseen one in order."""
        for _ in range(tries):
            arch = self.space.sample(self.rng)
            if arch not in self._seen:
                return arch
        # Nearly exhausted: a full scan finds the rest (or proves there is none).
        return next((arch for arch in self.space.enumerate() if arch not in self._seen), None)


def accuracy_of(outcome: Outcome | None) -> float | None:
    """What a single-objective strategy learns: a feasible trial's accuracy, None otherwise."""
    return outcome.accuracy if outcome is not None and outcome.feasible else None
