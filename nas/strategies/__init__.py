"""Search strategies behind one ask/tell interface (``Strategy``), created by name.

``random``, ``evolution`` and ``grid`` (every architecture once, for exhaustive tables) are
built in; ``nni-tpe`` and ``nni-evolution`` wrap NNI's tuners
and need the optional ``nni`` extra.
"""
from __future__ import annotations

from typing import Any

from search_spaces import SearchSpace

from nas.strategies.base import Strategy
from nas.strategies.evolution import RegularizedEvolution
from nas.strategies.grid import GridSearch
from nas.strategies.nni_adapter import NniEvolution, NniTpe
from nas.strategies.random_search import RandomSearch

__all__ = ["Strategy", "STRATEGY_NAMES", "create_strategy"]

_STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (RandomSearch, RegularizedEvolution, GridSearch, NniTpe, NniEvolution)
}
STRATEGY_NAMES: tuple[str, ...] = tuple(_STRATEGIES)


def create_strategy(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """Build strategy ``name`` over ``space``; ValueError for unknown names, unknown options or a missing extra."""
    try:
        cls = _STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name!r}; choices: {', '.join(STRATEGY_NAMES)}") from None
    return cls(space, seed, **options)
