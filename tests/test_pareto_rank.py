"""Non-dominated sorting with constraint-domination and crowding distance, on points worked out by hand."""
from __future__ import annotations

import math

import pytest

from nas.strategies.pareto_rank import (constrained_dominates, crowding_distances, dominates, non_dominated_fronts,
                                        rank_keys)

# (accuracy, speed), both maximised.  By hand:
#   a (0.9, 1.0)  b (0.8, 2.0)  c (0.7, 3.0)   -> front 0 (a trade-off curve)
#   d (0.8, 1.0)  dominated by a and b; e (0.6, 2.5) dominated by c  -> front 1 (d, e do not dominate each other)
#   f (0.5, 0.5)  dominated by d                                     -> front 2
POINTS = [(0.9, 1.0), (0.8, 2.0), (0.7, 3.0), (0.8, 1.0), (0.6, 2.5), (0.5, 0.5)]


def test_dominance_needs_one_strictly_better_objective():
    assert dominates((0.9, 1.0), (0.8, 1.0))
    assert not dominates((0.9, 1.0), (0.9, 1.0))  # equal: neither dominates
    assert not dominates((0.9, 1.0), (0.8, 2.0)) and not dominates((0.8, 2.0), (0.9, 1.0))
    with pytest.raises(ValueError, match="different dimension"):
        dominates((1.0,), (1.0, 2.0))


def test_fronts_of_hand_made_points():
    assert non_dominated_fronts(POINTS) == [[0, 1, 2], [3, 4], [5]]
    assert non_dominated_fronts([]) == []
    assert non_dominated_fronts([(1.0, 1.0), (1.0, 1.0)]) == [[0, 1]]  # duplicates share a front


def test_constraint_domination_puts_every_infeasible_point_behind_every_feasible_one():
    # f is the worst feasible point; the infeasible ones have the best objectives of all, or none at all.
    points = POINTS + [(1.0, 10.0), None, (0.99, 9.0)]
    violations = [0.0] * len(POINTS) + [0.3, 0.1, 0.3]
    fronts = non_dominated_fronts(points, violations)
    assert fronts == [[0, 1, 2], [3, 4], [5], [7], [6, 8]]  # infeasible ordered by violation, ties together
    assert constrained_dominates((0.1, 0.1), 0.0, (1.0, 10.0), 0.5)
    assert not constrained_dominates((1.0, 10.0), 0.5, (0.1, 0.1), 0.0)
    assert constrained_dominates(None, 0.1, (1.0, 10.0), 0.2) and not constrained_dominates(None, 0.2, None, 0.2)
    with pytest.raises(ValueError, match="violations must be >= 0"):
        constrained_dominates((1.0, 1.0), -1.0, (1.0, 1.0), 0.0)
    with pytest.raises(ValueError, match="a feasible point needs objectives"):
        constrained_dominates(None, 0.0, (1.0, 1.0), 0.0)
    with pytest.raises(ValueError, match="2 points but 1 violations"):
        non_dominated_fronts([(1.0, 1.0), (0.0, 0.0)], [0.0])


def test_crowding_distance_by_hand():
    # Front 0 of POINTS: accuracy range 0.2, speed range 2.0.  Extremes (a, c) get inf; b's neighbours
    # are a and c on both objectives: (0.9 - 0.7) / 0.2 + (3.0 - 1.0) / 2.0 = 2.0.
    assert crowding_distances(POINTS, [0, 1, 2]) == {0: math.inf, 1: pytest.approx(2.0), 2: math.inf}
    # Four points on a line: the inner ones are crowded in proportion to their neighbours' gaps.
    line = [(0.0, 3.0), (1.0, 2.0), (1.5, 1.5), (3.0, 0.0)]
    distances = crowding_distances(line, [0, 1, 2, 3])
    assert distances[1] == pytest.approx(1.5 / 3 + 1.5 / 3) and distances[2] == pytest.approx(2.0 / 3 + 2.0 / 3)
    assert crowding_distances(line, [0, 1]) == {0: math.inf, 1: math.inf}  # two points: both extremes
    assert crowding_distances([(1.0, 1.0)] * 3, [0, 1, 2]) == {0: 0.0, 1: 0.0, 2: 0.0}  # no spread at all


def test_rank_keys_sort_fronts_first_then_sparse_members_first():
    points = [(0.9, 1.0), (0.85, 1.5), (0.8, 2.0), (0.7, 3.0), (0.5, 0.5), None]
    violations = [0.0] * 5 + [0.2]
    keys = rank_keys(points, violations)
    order = sorted(range(len(points)), key=lambda i: keys[i])
    # front 0: the extremes (0 and 3) first, then 2 (gap 0.15/0.2 + 1.5/2.0 = 1.5) before 1 (0.1/0.2 + 1/2 = 1.0)
    assert order == [0, 3, 2, 1, 4, 5]
    assert keys[5] == (2, -0.0) and keys[4][0] == 1
