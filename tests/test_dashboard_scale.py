"""The dashboard on big searches: trials read incrementally, the table paged, the charts sampled,
frame rows reused between refreshes (the 10,000-trial numbers come from ``benchmarks.scale``)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from dashboard import trial_cache
from dashboard.frames import chart_sample, page_count, table_page, trials_frame
from dashboard.trial_cache import TrialCache
from nas.store import Measurement, TrialRecord, TrialStatus, open_store


def _record(i: int, status=TrialStatus.COMPLETED, accuracy=0.5, throughput=100.0, seed=None) -> TrialRecord:
    return TrialRecord(id=i, search="s", number=i, status=status, arch={"mixers": ["a", "b"]}, arch_hash=str(i),
                       recipe=None, recipe_hash="r", accuracy=accuracy, throughput=throughput, seed_name=seed)


class FakeStore:
    """Serves ``rows`` like ``Store.trials`` and remembers what was asked."""

    def __init__(self, rows: list[TrialRecord]):
        self.rows = {r.id: r for r in rows}
        self.calls: list[dict] = []

    def trials(self, search=None, statuses=None, *, newer_than=None, ids=()):
        self.calls.append({"newer_than": newer_than, "ids": sorted(ids)})
        return [r for i, r in sorted(self.rows.items())
                if newer_than is None or i > newer_than or i in set(ids)]


def test_trial_cache_reads_everything_once_then_only_what_can_change(monkeypatch):
    monkeypatch.setattr(trial_cache, "RECENT_ROWS", 2)
    now = [0.0]
    rows = [_record(i) for i in range(1, 11)] + [_record(11, TrialStatus.RUNNING, accuracy=None)]
    store = FakeStore(rows)
    cache = TrialCache("s", clock=lambda: now[0])
    version, trials = cache.read(store, token=1)
    assert [t.id for t in trials] == list(range(1, 12)) and store.calls[-1]["newer_than"] is None
    assert cache.read(store, token=1) == (version, trials) and len(store.calls) == 1  # same refresh: no read
    again = cache.read(store, token=2)  # nothing changed: same version and list
    assert store.calls[-1] == {"newer_than": 11, "ids": [10, 11, 11]} and again == (version, trials)
    store.rows[11] = dataclasses.replace(store.rows[11], status=TrialStatus.COMPLETED, accuracy=0.9)
    store.rows[12] = _record(12, TrialStatus.RUNNING, accuracy=None)
    newer, trials = cache.read(store, token=3)
    assert newer != version and [t.id for t in trials] == list(range(1, 13)) and trials[10].accuracy == 0.9
    assert trials[0] is rows[0]  # unchanged records are kept, not re-read copies
    del store.rows[5]  # what only a full read notices
    now[0] += trial_cache.FULL_READ_S
    _, trials = cache.read(store, token=4)
    assert store.calls[-1]["newer_than"] is None and 5 not in [t.id for t in trials]


def test_table_pages_in_the_chosen_order():
    df = trials_frame([_record(i, accuracy=(i % 7) / 10 if i % 5 else None, throughput=float(i))
                       for i in range(1, 251)])
    assert page_count(len(df)) == 3 and page_count(0) == 1 and page_count(100) == 1
    assert list(table_page(df, "Trial id", 3)["id"]) == list(range(201, 251))
    assert list(table_page(df, "Newest first", 1)["id"])[:3] == [250, 249, 248]
    best = table_page(df, "Accuracy, best first", 1)
    assert len(best) == 100 and best["accuracy"].iloc[0] == df["accuracy"].max()
    last = table_page(df, "Accuracy, best first", 3)
    assert last["accuracy"].isna().all()  # trials without an accuracy come last
    assert table_page(df, "Throughput, fastest first", 1)["id"].iloc[0] == 250


def test_chart_sample_keeps_front_seeds_and_running_and_is_stable():
    rows = [_record(i, accuracy=0.5 + (i % 13) / 100, throughput=float(1 + i % 17),
                    status=TrialStatus.RUNNING if i % 97 == 0 else TrialStatus.COMPLETED,
                    seed="seed" if i == 3 else None) for i in range(1, 5001)]
    df = trials_frame(rows)
    assert chart_sample(df, limit=len(df)) is df
    sample = chart_sample(df, limit=500)
    must = df["on_front"] | df["seed_name"].notna() | (df["status"] == "running")
    assert len(sample) == 500 and set(df.loc[must, "id"]) <= set(sample["id"])
    assert sample.equals(chart_sample(df, limit=500))
    grown = trials_frame(rows + [_record(i) for i in range(5001, 5101)])
    kept = len(set(sample["id"]) & set(chart_sample(grown, limit=500)["id"]))
    assert kept >= 0.9 * len(sample)  # a refresh redraws mostly the same trials


def test_frame_rows_are_reused_only_for_the_same_record():
    rows = [_record(i) for i in range(1, 50)]
    cache: dict = {}
    first = trials_frame(rows, row_cache=cache)
    changed = rows[:-1] + [dataclasses.replace(rows[-1], accuracy=0.99)]
    second = trials_frame(changed, row_cache=cache)
    assert second.equals(trials_frame(changed)) and not second.equals(first)
    assert cache[1][0] is rows[0] and cache[49][0] is changed[-1]


@pytest.fixture()
def big_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    store = open_store(url, create=True)
    search = store.create_search("big", space="mini", space_description={"name": "mini"}, config={},
                                 budget_kind="trials", budget_total=300, budget_text="300trials")
    for i in range(250):
        arch = {"mixers": ["pooling", "sepconv"], "depths": [1, 1 + i], "dims": [16, 32]}
        tid = store.start_trial(search.id, arch=arch, recipe={"epochs": 1})
        store.record_measurement(tid, Measurement(params=1000, gmacs=0.1, latency_ms=1.0, throughput=100.0 + i))
        store.finish_trial(tid, TrialStatus.COMPLETED, accuracy=(i % 10) / 10)
    store.update_search("big", status="finished")
    store.close()
    return url


def test_the_page_ships_one_page_of_the_table_and_samples_the_charts(monkeypatch, big_url):
    from streamlit.testing.v1 import AppTest

    import dashboard.panels

    monkeypatch.setenv("NAS_DASHBOARD_DB", big_url)
    monkeypatch.setattr(dashboard.panels, "CHART_POINTS", 120)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=120)
    at.query_params["search"] = "big"
    at.run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 100
    captions = " ".join(c.value for c in at.caption)
    assert "250 of 250 trials shown, 100 per page: page 1 of 3" in captions
    assert "The charts draw 120 of the 250 trials" in captions
    at.number_input(key="table_page").set_value(3).run()
    assert list(at.dataframe[0].value["id"]) == list(range(201, 251))
    at.selectbox(key="table_order").select("Accuracy, best first").run()  # a new order starts on page 1
    accuracies = list(at.dataframe[0].value["accuracy"])
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[0] == 90.0 and accuracies[-1] == 60.0
    at.checkbox(key="chart_all_points").check().run()
    assert "The charts draw" not in " ".join(c.value for c in at.caption)
    assert isinstance(at.dataframe[0].value, pd.DataFrame)


def test_hypervolume_frame_keeps_the_steps_of_the_full_history():
    """Only the trials that changed the hypervolume (and the last one) are shipped; as a step line
    they draw the same curve as one point per finished trial."""
    from nas.front import hypervolume_history

    from dashboard.frames import hypervolume_frame

    rows = [dataclasses.replace(_record(i, accuracy=0.3 + 0.5 * ((i * 37) % 101) / 101,
                                        throughput=float(1 + (i * 53) % 97)),
                                finished_at=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}", device_hours=0.01)
            for i in range(1, 400)]
    full = hypervolume_history(rows)
    steps = hypervolume_frame(rows)
    assert 2 < len(steps) < len(full) / 4
    assert (steps["device_hours"].iloc[0], steps["hypervolume"].iloc[0]) == full[0]
    assert (steps["device_hours"].iloc[-1], steps["hypervolume"].iloc[-1]) == full[-1]
    for hours, value in full:  # the step line ("hv": flat until the next point) at every finished trial
        drawn = steps.loc[steps["device_hours"] <= hours + 1e-12, "hypervolume"].iloc[-1]
        assert drawn == value
    assert hypervolume_frame([]).empty


def test_the_dashboard_process_imports_no_model_code():
    """``nas dashboard`` starts Streamlit with ``MIXER_NAS_NO_MODELS``: the store, the front and the
    reference labels load without torch (seconds of the first page on a small machine)."""
    import subprocess
    import sys

    from backbones import NO_MODELS_ENV
    from dashboard.command import streamlit_env

    env = streamlit_env("sqlite:///x.db")
    assert env[NO_MODELS_ENV] == "1"
    code = ("import sys, nas, nas.store, nas.front, nas.references, backbones.references, dashboard.frames, "
            "dashboard.trial_cache; print(sorted(m for m in ('torch', 'timm') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
