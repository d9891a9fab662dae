"""The ask/tell contract every search strategy follows, and the bookkeeping they share."""
from __future__ import annotations

import inspect
import math
import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from search_spaces import Architecture, SearchSpace

__all__ = ["Strategy"]


class Strategy(ABC):
    """Proposes architectures one at a time and learns from their scores.

    Contract with the driver:

    - ``ask()`` returns a valid architecture never proposed, told or marked seen before, or
      None when nothing new can be proposed right now.  With trials still in flight, a later
      ``ask()`` may succeed again; with none in flight, None means the search is over.
    - ``tell(arch, score)`` reports a finished trial: ``score`` is the objective to maximise,
      or None for a failed/infeasible trial (never proposed again, never learned from).
      Architectures the strategy did not propose (seeds, earlier results) may be told too.
    - ``mark_seen(arch)`` excludes an architecture evaluated elsewhere (an earlier search, a
      resumed one) without a score to learn from.
    """

    name: ClassVar[str]

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any):
        if options:
            raise ValueError(f"strategy {self.name!r}: unknown option(s) {sorted(options)}; "
                             f"accepted: {self.option_names() or 'none'}")
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self._seen: set[Architecture] = set()
        self._pending: set[Architecture] = set()  # asked, no result yet

    @classmethod
    def option_names(cls) -> list[str]:
        """Keyword options this strategy accepts besides ``space`` and ``seed``."""
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name not in ("self", "space", "seed")
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def ask(self) -> Architecture | None:
        arch = self._propose()
        if arch is None:
            return None
        if arch in self._seen:
            raise RuntimeError(f"strategy {self.name!r} proposed an already seen architecture {arch.label()}")
        self._seen.add(arch)
        self._pending.add(arch)
        return arch

    def tell(self, arch: Architecture, score: float | None) -> None:
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise ValueError(f"score must be a finite number, or None for a failed trial; got {score!r}")
            score = float(score)
        self._seen.add(arch)
        self._pending.discard(arch)
        self._learn(arch, score)

    def mark_seen(self, arch: Architecture) -> None:
        self._seen.add(arch)

    def is_seen(self, arch: Architecture) -> bool:
        return arch in self._seen

    @property
    def num_pending(self) -> int:
        """Architectures asked for and not yet told."""
        return len(self._pending)

    @abstractmethod
    def _propose(self) -> Architecture | None:
        """A valid, unseen architecture, or None."""

    def _learn(self, arch: Architecture, score: float | None) -> None:
        """React to a result (``arch`` is already marked seen); strategies without a model ignore it."""

    def _random_unseen(self, tries: int = 64) -> Architecture | None:
        """A uniform valid sample not seen yet; once samples keep colliding, the first unseen one in order."""
        for _ in range(tries):
            arch = self.space.sample(self.rng)
            if arch not in self._seen:
                return arch
        # Nearly exhausted: a full scan finds the rest (or proves there is none).
        return next((arch for arch in self.space.enumerate() if arch not in self._seen), None)
