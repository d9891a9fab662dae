"""Pareto front and hypervolume against hand-computed values."""
import math

import pytest

from nas.front import best_trial, hypervolume, hypervolume_2d, hypervolume_history, pareto_front, summarise
from nas.store import TrialRecord, TrialStatus


def _t(i, acc, thr, status="completed", hours=0.1):
    return TrialRecord(id=i, search="s", number=i, status=TrialStatus(status), arch=None, arch_hash=str(i),
                       recipe=None, recipe_hash="r", accuracy=acc, throughput=thr,
                       finished_at=f"2026-01-01T00:00:{i:02d}", device_hours=hours)


TRIALS = [_t(1, 0.9, 10.0), _t(2, 0.8, 100.0), _t(3, 0.7, 50.0), _t(4, 0.95, 5.0), _t(5, None, 1000.0, "failed"),
          _t(6, 0.99, 1000.0, "infeasible")]


def test_front_is_non_dominated_feasible_sorted_by_throughput():
    assert [t.id for t in pareto_front(TRIALS)] == [4, 1, 2]
    assert [t.id for t in TRIALS if t.usable] == [1, 2, 3, 4]
    assert TRIALS[0].objectives == (0.9, 10.0) and TRIALS[5].objectives is None


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


def test_hypervolume_of_points_ignores_dominated_and_out_of_reference_points():
    assert hypervolume_2d([(10.0, 0.5), (10.0, 0.4), (5.0, 0.3), (0.5, 0.9)]) == pytest.approx(0.5)
    assert hypervolume_2d([(100.0, 0.5)], ref_throughput=10.0, ref_accuracy=0.25) == pytest.approx(0.25)


def test_summary_counts_best_and_front():
    stats = summarise(TRIALS)
    assert stats.trials == 6 and stats.done == 4 and stats.count(TrialStatus.FAILED) == 1
    assert stats.best_accuracy == 0.95 and stats.best_trial == 4 and stats.front_size == 3
    assert stats.hypervolume == pytest.approx(hypervolume(TRIALS))
    assert best_trial(TRIALS).id == 4 and best_trial([]) is None


def test_front_is_final_fidelity_unless_stopped_trials_are_included():
    """An early-stopped trial (accuracy from fewer epochs) joins the front only when asked."""
    trials = [*TRIALS[:4], _t(7, 0.85, 400.0, "stopped"), _t(8, 0.97, 1.5, "stopped")]
    assert [t.id for t in pareto_front(trials)] == [4, 1, 2]
    assert [t.id for t in pareto_front(trials, include_stopped=True)] == [8, 4, 1, 7]  # 7 dominates 2
    assert hypervolume(trials) == pytest.approx(hypervolume(TRIALS))
    with_stopped = hypervolume(trials, include_stopped=True)
    # staircase from the fastest: 7 (400, .85), 1 (10, .90), 4 (5, .95), 8 (1.5, .97)
    assert with_stopped == pytest.approx(math.log10(400) * 0.85 + 1.0 * 0.05 + math.log10(5) * 0.05
                                         + math.log10(1.5) * 0.02)
    stats, stats_all = summarise(trials), summarise(trials, include_stopped=True)
    assert (stats.front_size, stats_all.front_size) == (3, 4)
    assert stats.hypervolume == pytest.approx(hypervolume(TRIALS)) and stats_all.hypervolume == pytest.approx(with_stopped)
    assert hypervolume_history(trials)[-1][1] == pytest.approx(hypervolume(TRIALS))
    assert hypervolume_history(trials, include_stopped=True)[-1][1] == pytest.approx(with_stopped)
