"""The scale benchmark's Ray-free tools: ``benchmarks.scale.fill`` (a big finished search written by the
real recorder, for the dashboard check at 10,000 trials), checked small against the simulated search it
replays; ``benchmarks.scale.logic`` (the search logic's cost per trial, window by window)."""
from __future__ import annotations

from collections import Counter

from benchmarks.scale.fill import MAX_LATENCY_MS, WORKERS, fill_store
from benchmarks.scale.table import scale_space, scale_table
from nas.bench import TabularEvaluator
from nas.bench.simulator import simulate_search
from nas.budget import parse_budget
from nas.store import SearchStatus, TrialStatus, open_store
from nas.trial.measure_settings import MeasureSettings


def test_the_store_holds_the_simulated_search_trial_for_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'fill.db'}"
    assert fill_store(url, 80, "filled") == 80
    space = scale_space()
    evaluator = TabularEvaluator(scale_table(space), MeasureSettings.defaults_for(
        True, target_res=space.target_res, max_latency_ms=MAX_LATENCY_MS))
    simulated = simulate_search(evaluator, "mo-evolution", parse_budget("80trials"), workers=WORKERS).trials
    store = open_store(url)
    search = store.get_search("filled")
    rows = store.trials(search="filled")
    assert search.status == SearchStatus.FINISHED and search.setting("recipe", "epochs") == 3
    assert [r.arch_hash for r in rows] == [t.arch.hash for t in simulated]
    assert [(r.status, r.epochs_done) for r in rows] == [(t.status, t.epochs_done) for t in simulated]
    assert Counter(r.status for r in rows)[TrialStatus.COMPLETED] > 0
    measured = [r for r in rows if r.throughput is not None]
    assert measured and all(r.device_hours > 0 for r in rows)
    assert all(r.error for r in rows if r.status == TrialStatus.FAILED)
    assert len(store.trial(rows[0].id).epochs) == rows[0].epochs_done
    store.close()


def test_the_logic_benchmark_reports_every_window_of_a_search():
    from benchmarks.scale.logic import measure

    report = measure(200)
    assert report["trials"] == 200 and report["cpu_s"] > 0
    assert [(w["from"], w["to"]) for w in report["windows"]] == [(i, i + 20) for i in range(0, 180, 20)]
    assert all(w["ms_per_trial"] > 0 for w in report["windows"])
