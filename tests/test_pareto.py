"""Pareto front and hypervolume against hand-computed values."""
import math

import pytest

from nas.pareto import hypervolume, hypervolume_history, pareto_front


def _t(i, acc, thr, status="completed", hours=0.1):
    return {"id": i, "status": status, "accuracy": acc, "throughput": thr, "arch_hash": str(i),
            "recipe_hash": "r", "finished_at": f"2026-01-01T00:00:{i:02d}", "device_hours": hours}


TRIALS = [_t(1, 0.9, 10.0), _t(2, 0.8, 100.0), _t(3, 0.7, 50.0), _t(4, 0.95, 5.0), _t(5, None, 1000.0, "failed"),
          _t(6, 0.99, 1000.0, "infeasible")]


def test_front_is_non_dominated_feasible_sorted_by_throughput():
    assert [t["id"] for t in pareto_front(TRIALS)] == [4, 1, 2]


def test_hypervolume_staircase():
    # front (log10 thr, acc): (0.699, .95), (1, .9), (2, .8) above reference (0, 0)
    expected = math.log10(5) * 0.95 + (1 - math.log10(5)) * 0.9 + 1 * 0.8
    assert hypervolume(TRIALS) == pytest.approx(expected)
    assert hypervolume([]) == 0.0


def test_hypervolume_history_is_monotone_in_device_hours():
    history = hypervolume_history(TRIALS)
    assert [h for h, _ in history] == pytest.approx([0.1 * i for i in range(1, 7)])
    values = [v for _, v in history]
    assert values == sorted(values) and values[-1] == pytest.approx(hypervolume(TRIALS))
