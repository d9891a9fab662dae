"""Grid: every architecture of the space exactly once, in the space's enumeration order.

For exhaustive evaluation of a small space (MixerBench's build), not for searching a large one:
it learns nothing and ignores its seed.  The order is ``SearchSpace.enumerate()`` (stage 1
varying slowest), so two runs over the same space propose the same sequence; architectures
told or marked seen before their turn (the space's seeds, earlier results) are skipped.  Speed
limits are taken (an infeasible architecture costs only its measurement) but never used to skip
one: the grid stays exhaustive.
"""
from __future__ import annotations

from typing import Any, Iterator

from search_spaces import Architecture, SearchSpace

from nas.strategies.base import Strategy

__all__ = ["GridSearch"]


class GridSearch(Strategy):
    """The space's valid architectures in enumeration order, each once; None when all are seen."""

    name = "grid"
    skips_predicted_infeasible = False

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any):
        super().__init__(space, seed, **options)
        self._order: Iterator[Architecture] = space.enumerate()

    def _propose(self) -> Architecture | None:
        return next((arch for arch in self._order if not self.is_seen(arch)), None)
