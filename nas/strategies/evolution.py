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

from nas.objectives import Outcome
from nas.strategies.base import Strategy, accuracy_of

__all__ = ["RegularizedEvolution"]


class RegularizedEvolution(Strategy):
    """Aging evolution over valid architectures; never proposes a seen one.

    Results told for any valid architecture (seeds included) join the population with their
    accuracy; failed and infeasible trials never do.  When every single-choice mutation of ``parent_tries``
    tournament winners is already seen, it falls back to a random unseen architecture.
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population_size: int = 20, sample_size: int = 5,
                 parent_tries: int = 10, **options: Any):
        super().__init__(space, seed, **options)
        for option, value, low in (("population_size", population_size, 2), ("sample_size", sample_size, 1),
                                   ("parent_tries", parent_tries, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"strategy {self.name!r}: {option} must be an int >= {low}, got {value!r}")
        if sample_size > population_size:
            raise ValueError(f"strategy {self.name!r}: sample_size ({sample_size}) must not exceed "
                             f"population_size ({population_size})")
        self.population_size = population_size
        self.sample_size = sample_size
        self.parent_tries = parent_tries
        # (architecture, outcome), oldest first; appending to a full deque drops the oldest
        self.population: deque[tuple[Architecture, Outcome]] = deque(maxlen=population_size)

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
        contenders = self.rng.sample(range(len(self.population)), min(self.sample_size, len(self.population)))
        return self.population[min(contenders, key=self._tournament_key(contenders))][0]

    def _tournament_key(self, contenders: list[int]):
        """Sort key over population indices, best first: the higher accuracy."""
        return lambda i: -self.population[i][1].accuracy

    def _admits(self, outcome: Outcome | None) -> bool:
        """Whether a told outcome joins the population: a trained one."""
        return accuracy_of(outcome) is not None

    def _learn(self, arch: Architecture, outcome: Outcome | None) -> None:
        if self._admits(outcome) and self.space.is_valid(arch):
            self.population.append((arch, outcome))
