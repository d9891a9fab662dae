"""Which table rows get a long run: the true front (the rows a search must rank right) plus random others."""
from __future__ import annotations

import random
from dataclasses import dataclass

from nas.bench import BenchEntry, BenchTable
from nas.errors import UsageError

__all__ = ["Selection", "select_architectures"]


@dataclass(frozen=True)
class Selection:
    front: tuple[BenchEntry, ...]  # on the table's true front, fastest first
    others: tuple[BenchEntry, ...]  # seeded random completed rows off the front, in table order

    @property
    def entries(self) -> tuple[BenchEntry, ...]:
        return self.front + self.others


def select_architectures(table: BenchTable, count: int, seed: int) -> Selection:
    """``count`` completed rows: the true front (thinned evenly along it, ends kept, when it has more
    than ``count`` rows), then others drawn with ``random.Random(seed)`` from the rest."""
    if count < 2:
        raise UsageError(f"--architectures must be >= 2 (a rank correlation needs two), got {count}")
    completed = table.completed
    if len(completed) < count:
        raise UsageError(f"the table has {len(completed)} completed rows, fewer than --architectures {count}: "
                         f"pass --architectures {len(completed)} or less")
    front = table.true_front()
    if len(front) > count:
        step = (len(front) - 1) / (count - 1)
        front = [front[round(i * step)] for i in range(count)]
    on_front = {e.arch for e in front}
    rest = [e for e in completed if e.arch not in on_front]
    drawn = set(random.Random(seed).sample(range(len(rest)), count - len(front)))
    return Selection(front=tuple(front), others=tuple(e for i, e in enumerate(rest) if i in drawn))
