"""``Rung``: MO-ASHA's rung kept in non-dominated fronts as trials arrive, checked against the
definitions it replaces (``non_dominated_fronts`` over every point, ``promotes`` re-sorting the rung)."""
from __future__ import annotations

import math
import random

import pytest

from nas.search.rung import Rung, promotes
from nas.strategies.pareto_rank import non_dominated_fronts


def random_points(rng: random.Random, n: int, levels: int) -> list[tuple[float, float]]:
    """Points on a coarse grid (many ties and duplicates), some with an unmeasured speed (-inf)."""
    points = []
    for _ in range(n):
        accuracy = rng.randint(0, levels) / levels
        speed = -math.inf if rng.random() < 0.05 else float(rng.randint(0, levels))
        points.append((-math.inf, -math.inf) if rng.random() < 0.03 else (accuracy, speed))
    return points


@pytest.mark.parametrize("levels", [3, 12, 1000])
def test_fronts_and_decisions_equal_the_full_sort_at_every_arrival(levels):
    rng = random.Random(levels)
    for _ in range(40):
        points = random_points(rng, rng.randint(1, 80), levels)
        rung = Rung()
        for i, point in enumerate(points):
            for factor in (2, 3, 4):
                assert rung.promotes(point, factor) == promotes(points[:i], point, factor), (points[:i + 1], factor)
            rung.add(f"t{i}", point)
            expected = [[f"t{j}" for j in front] for front in non_dominated_fronts(points[:i + 1])]
            assert rung.fronts() == expected
        assert list(rung.points.values()) == points and len(rung) == len(points)


def test_a_point_that_dominates_everything_pushes_every_front_down_by_one():
    rung = Rung()
    chain = [(0.1 * k, 0.1 * k) for k in range(5)]  # each dominates the ones before it
    for i, point in enumerate(chain):
        rung.add(f"t{i}", point)
    assert rung.fronts() == [["t4"], ["t3"], ["t2"], ["t1"], ["t0"]]
    assert rung.promotes((1.0, 1.0), 3) and not rung.promotes((0.0, 0.0), 3)
    with pytest.raises(ValueError, match="already recorded"):
        rung.add("t0", (1.0, 1.0))


def test_a_decision_on_a_big_rung_does_not_sort_it(monkeypatch):
    """Thousands of points on a trade-off, as real rungs: the same decisions without the full sort."""
    rng = random.Random(0)
    points = []
    for _ in range(3000):
        accuracy = rng.random()
        points.append((accuracy, 1.0 - accuracy + 0.3 * rng.random()))
    candidates = [(rng.random(), rng.random() * 1.3) for _ in range(20)]
    expected = [promotes(points, c, 3) for c in candidates]
    assert 0 < sum(expected) < len(expected)
    rung = Rung()
    for i, point in enumerate(points):
        rung.add(str(i), point)
    monkeypatch.setattr("nas.search.rung.non_dominated_fronts", None)  # calling it would raise
    assert [rung.promotes(c, 3) for c in candidates] == expected
