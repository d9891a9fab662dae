"""Regularised (aging) evolution, Real et al. 2019 ("Regularized Evolution for Image Classifier
Architecture Search", Algorithm 1), as in NNI's ``RegularizedEvolution`` with deduplication.

Until the population is full, architectures are sampled at random; afterwards each proposal
mutates one stage choice (mixer, depth or width of one stage) of the best of ``sample_size``
random population members.  New results push out the *oldest* member, not the worst, which
is what regularises the search.  Unlike NNI's version (per-label mutation probability), a
child always differs in exactly one choice, as in the paper.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from search_spaces import Architecture, SearchSpace

from nas.strategies.base import Strategy

__all__ = ["RegularizedEvolution"]


class RegularizedEvolution(Strategy):
    """Aging evolution over valid architectures; never proposes a seen one.

    Results told for any valid architecture (seeds included) join the population; failed
    trials (score None) never do.  When every single-choice mutation of ``parent_tries``
    tournament winners is already seen, it falls back to a random unseen architecture.
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20, sample_size: int = 5,
                 parent_tries: int = 10, **options: Any):
        super().__init__(space, seed, **options)
        for option, value, low in (("population_size", population_size, 2), ("sample_size", sample_size, 1),
                                   ("parent_tries", parent_tries, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"strategy 'evolution': {option} must be an int >= {low}, got {value!r}")
        if sample_size > population_size:
            raise ValueError(f"strategy 'evolution': sample_size ({sample_size}) must not exceed "
                             f"population_size ({population_size})")
        self.population_size = population_size
        self.sample_size = sample_size
        self.parent_tries = parent_tries
        # (architecture, score), oldest first; appending to a full deque drops the oldest
        self.population: deque[tuple[Architecture, float]] = deque(maxlen=population_size)

    def _propose(self) -> Architecture | None:
        if not self.population or len(self.population) + self.num_pending < self.population_size:
            return self._random_unseen()
        for _ in range(self.parent_tries):
            parent = self._tournament_winner()
            child = next((c for c in self.space.mutations(parent, self.rng) if not self.is_seen(c)), None)
            if child is not None:
                return child
        return self._random_unseen()

    def _tournament_winner(self) -> Architecture:
        contenders = self.rng.sample(list(self.population), min(self.sample_size, len(self.population)))
        return max(contenders, key=lambda member: member[1])[0]

    def _learn(self, arch: Architecture, score: float | None) -> None:
        if score is not None and self.space.is_valid(arch):
            self.population.append((arch, score))
