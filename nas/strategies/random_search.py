"""Random search: uniform over valid architectures, without repeats (the baseline every strategy must beat)."""
from __future__ import annotations

from search_spaces import Architecture

from nas.strategies.base import Strategy

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Uniform valid samples; never repeats an architecture; None once the space is exhausted."""

    name = "random"

    def _propose(self) -> Architecture | None:
        return self._random_unseen()
