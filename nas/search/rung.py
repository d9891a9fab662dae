"""The promotion order at one MO-ASHA rung, and ``Rung``: the rung's points kept sorted into
non-dominated fronts as trials arrive, so a decision costs about one front, not a sort of the rung.

The order (``promotion_order``): the points (accuracy at the rung, speed), both maximised, by
non-dominated sorting, then within a front by an epsilon-net: the most accurate point first, then
repeatedly the point farthest (Euclidean, each objective scaled to the points' range) from those
already taken.  ``promotes`` is its definition for one arriving point; ``Rung.promotes`` answers
exactly the same for the rung's points in arrival order, at a cost that does not grow with them
(re-sorting every recorded point at every decision made a 10,000-trial search quadratic).

Two-objective facts ``Rung`` relies on:

* a front sorted by the first objective ascending has the second one descending, so whether a
  front dominates a point is one bisection; whatever front k+1 dominates front k dominates too, so
  a point's front is a bisection over fronts;
* an arriving point leaves the fronts before its own unchanged: the points ranked ahead of it are
  the sizes of those fronts, and its place within its own front (the epsilon-net) is needed only
  when that front straddles the promotion cut;
* recording a point moves a recorded point at most one front down, and only one dominated by a
  point that moved (or by the new point, in the new point's front): recording walks down the
  fronts while something moves.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from nas.strategies.pareto_rank import non_dominated_fronts

__all__ = ["Rung", "epsilon_net_order", "promotes", "promotion_order"]

Point = tuple[float, float]  # (accuracy at the rung, speed objective), both maximised


def _scaled(points: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each objective mapped onto [0, 1] over the points' range (a constant objective maps to 0);
    a non-finite value (a speed never measured) maps below every finite one, to -1."""
    columns = list(zip(*points))
    out = [[0.0] * len(columns) for _ in points]
    for k, column in enumerate(columns):
        finite = [v for v in column if math.isfinite(v)]
        low = min(finite, default=0.0)
        span = (max(finite, default=0.0) - low) or 1.0
        for i, value in enumerate(column):
            out[i][k] = (value - low) / span if math.isfinite(value) else -1.0
    return out


def epsilon_net_order(points: Sequence[Sequence[float]], members: Iterable[int],
                      scaled: Sequence[Sequence[float]] | None = None) -> list[int]:
    """``members`` (indices of ``points``) in epsilon-net order: the best on the first objective
    first, then each time the member farthest from all those already ordered (ties: lowest index).

    Distances use ``points`` scaled per objective to their range (``scaled``, computed if not
    given), so accuracy and log speed weigh alike whatever their units.
    """
    remaining = sorted(members)
    if not remaining:
        return []
    scaled = _scaled(points) if scaled is None else scaled
    first = max(remaining, key=lambda i: (points[i][0], -i))
    order = [first]
    remaining.remove(first)
    nearest = {i: math.dist(scaled[i], scaled[first]) for i in remaining}
    while remaining:
        chosen = max(remaining, key=lambda i: (nearest[i], -i))
        order.append(chosen)
        remaining.remove(chosen)
        for i in remaining:
            nearest[i] = min(nearest[i], math.dist(scaled[i], scaled[chosen]))
    return order


def promotion_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Every index of ``points`` (all objectives maximised), best first: non-dominated fronts in
    order, each in epsilon-net order."""
    scaled = _scaled(points)
    return [i for front in non_dominated_fronts(points) for i in epsilon_net_order(points, front, scaled)]


def promotes(recorded: Sequence[Point], candidate: Point, reduction_factor: float) -> bool:
    """Whether a trial arriving at a rung with ``candidate`` continues, given the points recorded
    there before it: its position in ``promotion_order`` must be within the top n/``reduction_factor``
    of those n points (only the fronts up to its own are ordered)."""
    points = [*recorded, candidate]
    top, me, ahead = len(points) / reduction_factor, len(recorded), 0
    for front in non_dominated_fronts(points):
        if me in front:
            return ahead + epsilon_net_order(points, front, _scaled(points)).index(me) < top
        ahead += len(front)
        if ahead >= top:
            return False
    raise AssertionError("non-dominated sorting lost a point")  # every index is in one front


@dataclass
class _Front:
    """One front's members sorted by the first objective ascending (so the second descends): the
    two objectives and each member's arrival number at the rung."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.xs)

    def dominates(self, x: float, y: float) -> bool:
        """Whether a member dominates (x, y): of the members with a first objective >= x, the one
        with the smallest has the largest second objective."""
        i = bisect.bisect_left(self.xs, x)
        return i < len(self.xs) and (self.ys[i] > y or (self.ys[i] == y and self.xs[i] > x))

    def take_dominated(self, others: "_Front") -> "_Front":
        """Remove and return the members a member of ``others`` (a front) dominates."""
        taken = _Front()
        if not others.xs or not self.xs:
            return taken
        # only members with x <= max(others' x) and y <= max(others' y) can be: a contiguous slice
        lo = len(self.ys) - bisect.bisect_right(self.ys[::-1], others.ys[0])
        hi = bisect.bisect_right(self.xs, others.xs[-1])
        keep = []
        for i in range(lo, hi):
            if others.dominates(self.xs[i], self.ys[i]):
                taken.add(self.xs[i], self.ys[i], self.seqs[i])
            else:
                keep.append(i)
        if taken.xs:
            self.xs[lo:hi], self.ys[lo:hi], self.seqs[lo:hi] = ([column[i] for i in keep]
                                                                for column in (self.xs, self.ys, self.seqs))
        return taken

    def add(self, x: float, y: float, seq: int) -> None:
        """Insert a point that no member dominates and that dominates no member."""
        i = bisect.bisect_right(self.xs, x)
        self.xs.insert(i, x)
        self.ys.insert(i, y)
        self.seqs.insert(i, seq)


class Rung:
    """The points recorded at one rung, by trial id in arrival order, sorted into non-dominated fronts."""

    def __init__(self) -> None:
        self.points: dict[str, Point] = {}
        self._fronts: list[_Front] = []
        self._low = [math.inf, math.inf]  # finite minimum and maximum of each objective (for scaling)
        self._high = [-math.inf, -math.inf]

    def __len__(self) -> int:
        return len(self.points)

    def fronts(self) -> list[list[str]]:
        """Trial ids, front by front (best first), each front in arrival order."""
        ids = list(self.points)
        return [[ids[s] for s in sorted(front.seqs)] for front in self._fronts]

    def promotes(self, point: Point, reduction_factor: float) -> bool:
        """``promotes(points recorded so far, point, reduction_factor)``, without sorting them."""
        x, y = _clean(point)
        top = (len(self.points) + 1) / reduction_factor
        k = self._front_of(x, y)
        ahead = sum(len(front) for front in self._fronts[:k])
        if ahead >= top:
            return False
        same = self._fronts[k] if k < len(self._fronts) else _Front()
        members = sorted(seq for sx, sy, seq in zip(same.xs, same.ys, same.seqs) if not _dominates(x, y, sx, sy))
        if ahead + len(members) < top:  # within the cut even if it came last in its front
            return True
        ids = list(self.points)
        local = [self.points[ids[seq]] for seq in members] + [point]
        low_high = [self._range(k, point[k]) for k in range(2)]
        scaled = [[(v - low) / ((high - low) or 1.0) if math.isfinite(v) else -1.0
                   for v, (low, high) in zip(p, low_high)] for p in local]
        return ahead + epsilon_net_order(local, range(len(local)), scaled).index(len(local) - 1) < top

    def add(self, trial_id: str, point: Point) -> None:
        """Record ``point`` for ``trial_id`` (not recorded at this rung yet)."""
        if trial_id in self.points:
            raise ValueError(f"trial {trial_id!r} is already recorded at this rung")
        x, y = _clean(point)
        seq = len(self.points)
        self.points[trial_id] = point
        for k, v in enumerate(point):
            if math.isfinite(v):
                self._low[k], self._high[k] = min(self._low[k], v), max(self._high[k], v)
        k = self._front_of(x, y)
        if k == len(self._fronts):
            self._fronts.append(_Front())
        new = _Front([x], [y], [seq])
        moved = self._fronts[k].take_dominated(new)
        self._fronts[k].add(x, y, seq)
        while moved.xs:  # what moved one front down pushes on what it dominates there
            k += 1
            if k == len(self._fronts):
                self._fronts.append(moved)
                break
            pushed = self._fronts[k].take_dominated(moved)
            for mx, my, mseq in zip(moved.xs, moved.ys, moved.seqs):
                self._fronts[k].add(mx, my, mseq)
            moved = pushed

    def _front_of(self, x: float, y: float) -> int:
        """The first front that does not dominate (x, y); len(fronts) when every one does."""
        lo, hi = 0, len(self._fronts)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._fronts[mid].dominates(x, y):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _range(self, k: int, candidate: float) -> tuple[float, float]:
        """(low, high) of objective ``k`` over the finite values recorded and the candidate's, as
        ``_scaled`` takes them; (0, 0) when none is finite."""
        low, high = self._low[k], self._high[k]
        if math.isfinite(candidate):
            low, high = min(low, candidate), max(high, candidate)
        return (low, high) if math.isfinite(low) else (0.0, 0.0)


def _dominates(ax: float, ay: float, bx: float, by: float) -> bool:
    return ax >= bx and ay >= by and (ax > bx or ay > by)


def _clean(point: Point) -> tuple[float, float]:
    """The point as sorted: NaN (never recorded by the scheduler, and unordered) as -inf."""
    x, y = (float(v) if v == v else -math.inf for v in point)
    return x, y
