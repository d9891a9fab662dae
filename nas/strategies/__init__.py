"""Search strategies behind one ask/tell interface (``Strategy``), created by name.

Single objective (validation accuracy): ``random``, regularised ``evolution``, ``grid`` (every
architecture once, for exhaustive tables), and ``nni-tpe`` / ``nni-evolution`` (NNI's tuners,
optional ``nni`` extra).  Multi-objective (accuracy and a speed objective, constraint-domination
for speed limits): ``mo-evolution`` (regularised evolution with a Pareto-rank tournament),
``nsga2`` and ``motpe`` (Optuna's NSGA-II and multi-objective TPE).
"""
from __future__ import annotations

from typing import Any

from search_spaces import SearchSpace

from nas.strategies.base import Strategy
from nas.strategies.evolution import RegularizedEvolution
from nas.strategies.grid import GridSearch
from nas.strategies.mo_evolution import MultiObjectiveEvolution
from nas.strategies.nni_adapter import NniEvolution, NniTpe
from nas.strategies.optuna_adapter import MotpeStrategy, Nsga2Strategy
from nas.strategies.random_search import RandomSearch

__all__ = ["MULTI_OBJECTIVE", "Strategy", "STRATEGY_NAMES", "create_strategy"]

_STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, RegularizedEvolution, GridSearch, NniTpe, NniEvolution,
                              MultiObjectiveEvolution, Nsga2Strategy, MotpeStrategy)
}
STRATEGY_NAMES: tuple[str, ...] = tuple(_STRATEGIES)
MULTI_OBJECTIVE: tuple[str, ...] = (MultiObjectiveEvolution.name, Nsga2Strategy.name, MotpeStrategy.name)


def create_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """Build strategy ``name`` over ``space``; ValueError for unknown names, unknown options, a missing
    extra, or speed ``limits`` given to a strategy that cannot take them.

    Besides its own options every strategy takes ``speed`` (``SpeedObjective``), ``limits``
    (``SpeedLimits``) and ``predict_speed`` (skip proposals predicted far outside the limits).
    """
    try:
        cls = _STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name!r}; choices: {', '.join(STRATEGY_NAMES)}") from None
    return cls(space, seed, **options)
