"""NNI 3.0's HPO tuners (TPE, naive evolution) behind the ``Strategy`` ask/tell interface.

NNI is an optional extra (``pip install 'mixer-nas[nni]'``): it has been unmaintained since its
last release, 3.0 (August 2023), so it is imported only when one of these strategies is built.
Only the tuner classes are used, as plain objects, never NNI's experiment manager:
the space becomes ``{label: {"_type": "choice", "_value": values}}`` from ``space.choices()``,
``generate_parameters(id)`` proposes, ``receive_trial_result(id, params, score)`` learns.

NNI tuners know nothing of constraints, mixer validity or earlier searches, so a proposal
that is invalid or already seen is answered at once with a result (its known score for a
finished architecture, otherwise ``BAD_SCORE``) and the tuner is asked again, up to
``max_retries`` times.  Failed trials (``tell(arch, None)``) go back as NNI failures
(``trial_end(id, success=False)``): TPE forgets them, the evolution tuner replaces them.  They
optimise accuracy alone and cannot take speed limits: an infeasible trial could only go back as
such a failure, which TPE forgets, so it would keep proposing over the limit.
"""
from __future__ import annotations

import itertools
from abc import abstractmethod
from typing import Any

from search_spaces import Architecture, SearchSpace

from nas.objectives import Outcome
from nas.strategies.base import Strategy, accuracy_of

__all__ = ["NniTpe", "NniEvolution", "BAD_SCORE"]

# Far below any real objective; both tuners only compare scores, so the magnitude is harmless.
BAD_SCORE = -1e9


class _NniTunerStrategy(Strategy):
    """Drives any object with NNI's classic ``Tuner`` methods; ``tuner=`` injects one (tests, other tuners)."""

    takes_constraints = False

    @classmethod
    def constraint_refusal(cls) -> str:
        return ("NNI's tuners forget failed trials, so they would keep proposing over the limit; "
                "use mo-evolution, nsga2, motpe, evolution or random")

    def __init__(self, space: SearchSpace, seed: int = 0, tuner: Any = None, max_retries: int = 100,
                 **options: Any):
        super().__init__(space, seed, **options)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(f"strategy {self.name!r}: max_retries must be an int >= 1, got {max_retries!r}")
        self.max_retries = max_retries
        self.tuner = tuner if tuner is not None else self._make_tuner()
        self.tuner.update_search_space(
            {label: {"_type": "choice", "_value": values} for label, values in space.choices().items()})
        self._ids = itertools.count()
        self._in_flight: dict[Architecture, tuple[int, dict]] = {}  # asked -> (parameter id, tuner params)
        self._scores: dict[Architecture, float] = {}

    @abstractmethod
    def _make_tuner(self) -> Any:
        """The NNI tuner this strategy wraps (imports NNI)."""

    def _import_nni(self) -> None:
        try:
            import nni  # noqa: F401
        except ImportError:
            raise ValueError(f"strategy {self.name!r} needs the optional 'nni' extra: "
                             "pip install 'mixer-nas[nni]'") from None

    def _propose(self) -> Architecture | None:
        for _ in range(self.max_retries):
            parameter_id = next(self._ids)
            params = self.tuner.generate_parameters(parameter_id)
            arch = self.space.arch_from_choices(params)
            if not self.is_seen(arch) and self.space.is_valid(arch):
                self._in_flight[arch] = (parameter_id, params)
                return arch
            self.tuner.receive_trial_result(parameter_id, params, self._scores.get(arch, BAD_SCORE))
        return None

    def _learn(self, arch: Architecture, outcome: Outcome | None) -> None:
        score = accuracy_of(outcome)
        if score is not None:
            self._scores[arch] = score
        if arch in self._in_flight:
            parameter_id, params = self._in_flight.pop(arch)
            if score is None:
                self.tuner.trial_end(parameter_id, False)
            else:
                self.tuner.receive_trial_result(parameter_id, params, score)
        elif score is not None and self.space.is_valid(arch):
            # Seeds and earlier results: history the tuner did not ask for.
            self.tuner.import_data([{"parameter": self.space.choices_of(arch), "value": score}])


class NniTpe(_NniTunerStrategy):
    """NNI's ``TpeTuner`` (maximising, seeded)."""

    name = "nni-tpe"

    def _make_tuner(self) -> Any:
        self._import_nni()
        from nni.algorithms.hpo.tpe_tuner import TpeTuner

        return TpeTuner(optimize_mode="maximize", seed=self.seed)


class NniEvolution(_NniTunerStrategy):
    """NNI's naive ``EvolutionTuner``; it draws from unseeded global RNGs, so runs are not reproducible."""

    name = "nni-evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, tuner: Any = None, max_retries: int = 100,
                 population_size: int = 20, **options: Any):
        if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"strategy 'nni-evolution': population_size must be an int >= 2, got {population_size!r}")
        self.population_size = population_size
        super().__init__(space, seed, tuner=tuner, max_retries=max_retries, **options)

    def _make_tuner(self) -> Any:
        self._import_nni()
        from nni.algorithms.hpo.evolution_tuner import EvolutionTuner

        return EvolutionTuner(optimize_mode="maximize", population_size=self.population_size)
