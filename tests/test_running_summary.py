"""``RunningSummary`` (what the progress lines show, kept up to date one trial at a time) equals
``summarise`` of the same trials after every event, and the driver's progress lines no longer
re-read the whole search per event."""
from __future__ import annotations

import dataclasses
import random

import pytest

from nas.front import RunningSummary, hypervolume, hypervolume_history, summarise
from nas.store import TrialRecord, TrialStatus

STATUSES = [TrialStatus.COMPLETED, TrialStatus.STOPPED, TrialStatus.INFEASIBLE, TrialStatus.FAILED]


def _trial(i: int, rng: random.Random) -> TrialRecord:
    # few distinct values, so ties, duplicates and weakly dominated points are common
    return TrialRecord(id=i, search="s", number=i, status=TrialStatus.RUNNING, arch=None, arch_hash=f"a{i % 7}",
                       recipe=None, recipe_hash="r", accuracy=None, throughput=rng.choice([None, 10.0, 20.0, 40.0]),
                       reused_from=rng.choice([None, None, 1]), finished_at=None)


def _finished(t: TrialRecord, rng: random.Random, second: int) -> TrialRecord:
    status = rng.choice(STATUSES)
    accuracy = rng.choice([0.5, 0.6, 0.7]) if status in (TrialStatus.COMPLETED, TrialStatus.STOPPED) else None
    return dataclasses.replace(t, status=status, accuracy=accuracy, finished_at=f"2026-01-01T00:{second // 60:02d}:"
                               f"{second % 60:02d}", device_hours=0.01)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("include_stopped", [False, True])
def test_running_summary_equals_summarise_after_every_event(seed, include_stopped):
    rng = random.Random(seed)
    state: dict[int, TrialRecord] = {}
    running = RunningSummary(include_stopped=include_stopped)
    for step in range(120):
        pending = [t for t in state.values() if t.status == TrialStatus.RUNNING]
        if pending and rng.random() < 0.5:
            t = _finished(rng.choice(pending), rng, step)
        elif state and rng.random() < 0.05:  # a stored row rewritten (e.g. a re-measured value)
            t = dataclasses.replace(rng.choice(list(state.values())), accuracy=rng.choice([None, 0.55, 0.8]))
        else:
            t = _trial(len(state) + 1, rng)
        state[t.id] = t
        running.update(t)
        trials = sorted(state.values(), key=lambda r: r.id)
        assert running.stats() == summarise(trials, include_stopped), f"step {step}"


def test_running_summary_from_stored_trials_and_history():
    rng = random.Random(3)
    trials = [_finished(_trial(i, rng), rng, i) for i in range(1, 200)]
    assert RunningSummary(trials).stats() == summarise(trials)
    history = hypervolume_history(trials)
    assert len(history) == len(trials)
    assert history[-1][1] == pytest.approx(hypervolume(trials))
    assert [v for _, v in history] == sorted(v for _, v in history)  # a front only grows


def test_progress_lines_read_the_search_once_then_one_trial_per_event(tmp_path, monkeypatch):
    import io

    from nas.budget import BudgetTracker, parse_budget
    from nas.search.recorder import SearchRecorder
    from nas.store import Store, open_store
    from nas.trial.measure_settings import MeasureSettings
    from nas.trial.recipe import ProxyRecipe
    from search_spaces import Architecture

    recipe = ProxyRecipe.from_dict({"dataset": "digits", "epochs": 1, "img_size": 32})
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    budget = parse_budget("100trials")
    search = store.create_search("s", space="mini", space_description={"name": "mini"}, config={},
                                 budget_kind=budget.unit, budget_total=budget.amount, budget_text=budget.text)
    out = io.StringIO()
    recorder = SearchRecorder(store, search, BudgetTracker(budget), artifacts_dir=tmp_path / "art", recipe=recipe,
                              measure=MeasureSettings(target_res=32), gpus_per_trial=0.0, cpus_per_trial=1.0,
                              device_kind="cpu:test", out=out)
    whole_search_reads = []
    read_all = Store.trials
    monkeypatch.setattr(Store, "trials", lambda self, *a, **k: whole_search_reads.append(1) or read_all(self, *a, **k))
    for i in range(30):
        a = Architecture(("sepconv", "pooling"), (1, i + 1), (16, 16))
        recorder.trial_started(f"t{i}", {"arch": a.to_dict(), "recipe": recipe.to_dict()})
        recorder.trial_result(f"t{i}", {"phase": "measure", "epoch": 0, "val_accuracy": 0.0, "feasible": True,
                                        "params": 1, "gmacs": 0.1, "latency_ms": 1.0, "throughput": 100.0 + i})
        recorder.trial_result(f"t{i}", {"phase": "epoch", "epoch": 1, "val_accuracy": 0.5 + i / 100})
        recorder.trial_completed(f"t{i}", None)
    assert len(whole_search_reads) == 1
    last = out.getvalue().splitlines()[-1]
    expected = summarise(read_all(store, search="s"))
    assert f"trials: {expected.done} done, 0 running" in last and f"front {expected.front_size}" in last
    assert expected.done == 30
    store.close()
