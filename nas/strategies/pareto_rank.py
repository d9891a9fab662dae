"""Non-dominated sorting with constraint-domination, and crowding distance (Deb et al., NSGA-II).

Points are objective vectors, every objective maximised.  A violation of 0 means feasible; a
positive one says how far outside the constraints a point is.  Constraint-domination (Deb 2000):
a feasible point dominates every infeasible one; of two infeasible points the smaller violation
dominates (their objectives are not compared: an infeasible trial has none worth learning from);
of two feasible points the usual Pareto dominance decides.

``rank_keys`` turns this into one sortable key per point, (front number, -crowding distance),
smaller is better: the ranking mo-evolution's tournament uses, over the whole population as
Syne Tune's multi-objective regularised evolution does.
"""
from __future__ import annotations

import math
from typing import Sequence

__all__ = ["constrained_dominates", "crowding_distances", "dominates", "non_dominated_fronts", "rank_keys"]

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` in every objective and better in one (all maximised)."""
    if len(a) != len(b):
        raise ValueError(f"points of different dimension: {len(a)} and {len(b)}")
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def constrained_dominates(a: Point | None, a_violation: float, b: Point | None, b_violation: float) -> bool:
    """Constraint-domination; an infeasible point may have no objectives (None)."""
    if a_violation < 0 or b_violation < 0:
        raise ValueError(f"violations must be >= 0, got {a_violation} and {b_violation}")
    if a_violation == 0 and b_violation > 0:
        return True
    if a_violation > 0 or b_violation > 0:
        return 0 < a_violation < b_violation
    if a is None or b is None:
        raise ValueError("a feasible point needs objectives")
    return dominates(a, b)


def non_dominated_fronts(points: Sequence[Point | None], violations: Sequence[float] | None = None
                         ) -> list[list[int]]:
    """Indices of ``points`` grouped into successive non-dominated fronts (front 0 is the best).

    Every index appears in exactly one front; within a front, indices keep their input order.
    """
    n = len(points)
    violations = [0.0] * n if violations is None else list(violations)
    if len(violations) != n:
        raise ValueError(f"{n} points but {len(violations)} violations")
    if all(v == 0 for v in violations) and all(p is not None and len(p) == 2 for p in points):
        return _fronts_2d(points)
    dominated_by = [0] * n  # how many points dominate i
    dominates_list: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if constrained_dominates(points[i], violations[i], points[j], violations[j]):
                dominates_list[i].append(j)
                dominated_by[j] += 1
            elif constrained_dominates(points[j], violations[j], points[i], violations[i]):
                dominates_list[j].append(i)
                dominated_by[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if dominated_by[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominates_list[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def _fronts_2d(points: Sequence[Point]) -> list[list[int]]:
    """The same fronts for feasible two-objective points in O(n log n + n x fronts) instead of O(n^2)
    (MO-ASHA sorts every rung at every decision).

    Points are swept best first on the first objective (ties: best on the second).  Members of one
    front, in sweep order, have increasing second objectives, so of a front only its latest member
    can dominate the next point; a point joins the first front whose latest member does not.
    """
    fronts: list[list[int]] = []
    latest: list[int] = []
    for i in sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1])):
        x, y = points[i]
        for k, j in enumerate(latest):
            lx, ly = points[j]
            if not (lx >= x and ly >= y and (lx > x or ly > y)):  # ``dominates``, inlined: the hot loop
                fronts[k].append(i)
                latest[k] = i
                break
        else:
            fronts.append([i])
            latest.append(i)
    return [sorted(front) for front in fronts]


def crowding_distances(points: Sequence[Point], front: Sequence[int]) -> dict[int, float]:
    """Crowding distance of each index of one front: per objective, the gap between its two
    neighbours over the front's range, summed; the extremes of any objective get inf.

    An objective on which the whole front is equal adds nothing.
    """
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for k in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][k])
        low, high = points[ordered[0]][k], points[ordered[-1]][k]
        if high == low:
            continue
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        for before, i, after in zip(ordered, ordered[1:], ordered[2:]):
            distance[i] += (points[after][k] - points[before][k]) / (high - low)
    return distance


def rank_keys(points: Sequence[Point | None], violations: Sequence[float] | None = None
              ) -> list[tuple[int, float]]:
    """(front number, -crowding distance) per point: sorting by it puts the best first.

    Crowding is computed within each front of feasible points; infeasible points (ordered by
    their violation through the fronts) get crowding 0.
    """
    violations = [0.0] * len(points) if violations is None else list(violations)
    keys: list[tuple[int, float]] = [(0, 0.0)] * len(points)
    for number, front in enumerate(non_dominated_fronts(points, violations)):
        feasible = [i for i in front if violations[i] == 0]
        crowding = crowding_distances(points, feasible) if feasible else {}
        for i in front:
            keys[i] = (number, -crowding.get(i, 0.0))
    return keys
