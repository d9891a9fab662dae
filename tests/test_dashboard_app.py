"""Dashboard logic under Streamlit's AppTest: summary, selection → trial detail, filters, error pages,
live refresh, plus the pure frame helpers and the ``nas dashboard`` command's checks."""
from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import command
from dashboard.data import DB_ENV, resolve_db_url
from dashboard.frames import UNREADABLE, arch_view, filter_trials, front_mixer_counts, trials_frame
from nas.cli import main as nas_main
from nas.front import pareto_front
from nas.store import Measurement, TrialRecord, TrialStatus, open_store

from dashboard_fixture import DEVICE, PROTOCOL, RECIPE, build_fixture_db

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def fixture_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_fixture_db(tmp_path_factory.mktemp("dash") / "nas.db")


@pytest.fixture
def fresh_url(tmp_path: Path) -> str:
    """A fixture DB of this test's own, for tests that write to it."""
    return build_fixture_db(tmp_path / "nas.db")


def run_app(monkeypatch: pytest.MonkeyPatch, url: str, search: str | None = None, **state) -> AppTest:
    monkeypatch.setenv(DB_ENV, url)
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    if search:
        at.query_params["search"] = search
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label))


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_summary_chart_and_table_match_the_store(monkeypatch, fixture_url):
    at = run_app(monkeypatch, fixture_url, "hybrid-demo")
    trials = open_store(fixture_url).trials(search="hybrid-demo")
    assert at.header[0].value == "Search hybrid-demo"
    assert metric(at, "Trials") == str(len(trials))
    assert metric(at, "Pareto front") == f"{len(pareto_front(trials))} trials"
    assert metric(at, "Budget charged (cpu-h)").endswith("/ 2")
    assert len(at.get("plotly_chart")) >= 3  # Pareto, hypervolume, latency (+ front heatmap)
    table = at.dataframe[0].value
    assert sorted(table["id"]) == sorted(t.id for t in trials)
    assert "No speed measurement (failed): trial(s) 14 (not plotted)" in texts(at.caption)


def test_defaults_to_the_newest_search_and_notes_live_refresh(monkeypatch, fixture_url):
    at = run_app(monkeypatch, fixture_url)
    assert at.header[0].value == "Search tight-latency"
    assert "refreshes every" in texts(at.sidebar.caption)


def _point(trial_id: int) -> dict:
    return {"selection": {"points": [{"curve_number": 0, "point_index": 0, "customdata": [trial_id, 0]}],
                          "point_indices": [0], "box": [], "lasso": []}}


def test_selecting_a_chart_point_opens_that_trial(monkeypatch, fixture_url):
    trial = next(t for t in open_store(fixture_url).trials(search="hybrid-demo") if t.seed_name == "CAFormer-like")
    at = run_app(monkeypatch, fixture_url, "hybrid-demo", pareto=_point(trial.id))
    assert any(s.value.startswith(f"Trial {trial.id} ·") for s in at.subheader)
    assert "CAFormer-like" in texts(at.markdown)
    diagram = next(m.value for m in at.markdown if "Stage 4" in m.value)
    assert diagram.count("mhsa") == 2 and diagram.count("sepconv") == 2
    assert f"nas export {trial.id} --out exported/trial-{trial.id} --db {fixture_url}" in texts(at.code)


def test_selecting_a_table_row_opens_that_trial_and_a_new_point_replaces_it(monkeypatch, fixture_url):
    trials = open_store(fixture_url).trials(search="hybrid-demo")
    table_pick = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at = run_app(monkeypatch, fixture_url, "hybrid-demo", trial_table=table_pick)
    third = trials[2]  # the table is ordered by trial id
    assert third.status == "infeasible"
    assert any(s.value.startswith(f"Trial {third.id} ·") for s in at.subheader)
    assert "No export: a infeasible trial" in texts(at.caption)
    assert not at.code

    at.session_state["pareto"] = _point(trials[0].id)
    at.run()
    assert any(s.value.startswith(f"Trial {trials[0].id} ·") for s in at.subheader)
    assert not any(s.value.startswith(f"Trial {third.id} ·") for s in at.subheader)

    at.multiselect(key="filter_status").set_value([TrialStatus.COMPLETED])
    at.selectbox(key="search").select("tight-latency").run()
    assert not at.exception and at.header[0].value == "Search tight-latency"
    assert not any(s.value.startswith("Trial ") for s in at.subheader)  # nothing carried over
    assert len(at.dataframe[0].value) == len(open_store(fixture_url).trials(search="tight-latency"))


def test_filters_reduce_the_table(monkeypatch, fixture_url):
    trials = open_store(fixture_url).trials(search="hybrid-demo")
    at = run_app(monkeypatch, fixture_url, "hybrid-demo")
    at.multiselect(key="filter_status").set_value([TrialStatus.COMPLETED]).run()
    completed = {t.id for t in trials if t.status == TrialStatus.COMPLETED}
    assert set(at.dataframe[0].value["id"]) == completed

    at.multiselect(key="filter_stage_1").set_value(["sepconv"]).run()
    expected = {t.id for t in trials if t.id in completed and t.arch["mixers"][0] == "sepconv"}
    assert set(at.dataframe[0].value["id"]) == expected and 0 < len(expected) < len(completed)

    at.multiselect(key="filter_status").set_value([])
    at.multiselect(key="filter_stage_1").set_value([])
    at.slider(key="filter_accuracy").set_value((91.0, 100.0))
    at.number_input(key="filter_thr_min").set_value(1500.0).run()
    expected = {t.id for t in trials
                if t.accuracy is not None and t.accuracy >= 0.91 and (t.throughput or 0) >= 1500}
    assert set(at.dataframe[0].value["id"]) == expected and expected
    assert f"{len(expected)} of {len(trials)} trials shown" in texts(at.caption)


def test_empty_database_says_so(monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url, create=True).close()
    at = run_app(monkeypatch, url)
    assert "holds no searches yet" in texts(at.info)
    assert not at.get("plotly_chart")


def test_missing_or_foreign_database_shows_one_error(monkeypatch, tmp_path):
    at = run_app(monkeypatch, f"sqlite:///{tmp_path / 'missing.db'}")
    assert "Cannot open the results database" in at.error[0].value and "does not exist" in at.error[0].value

    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER)")
    at = run_app(monkeypatch, f"sqlite:///{foreign}")
    assert "not a mixer-nas store" in at.error[0].value


def test_corrupt_json_in_a_row_is_shown_not_raised(monkeypatch, fresh_url):
    store = open_store(fresh_url)
    victim = store.trials(search="hybrid-demo")[3].id
    with sqlite3.connect(fresh_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE trials SET arch_json = '{\"mixers\": [broken' WHERE id = ?", (victim,))
        conn.execute("UPDATE measurement_protocols SET protocol_json = 'not json'")
    at = run_app(monkeypatch, fresh_url, "hybrid-demo", pareto=_point(victim))
    table = at.dataframe[0].value
    assert table.loc[table["id"] == victim, "mixers"].item() == UNREADABLE
    assert "could not be read" in texts(at.warning)
    assert any("No measurement protocol" in i.value for i in at.info)


def test_running_search_shows_new_trials_and_stops_refreshing_when_finished(monkeypatch, fresh_url):
    at = run_app(monkeypatch, fresh_url, "tight-latency")
    before = int(metric(at, "Trials"))
    store = open_store(fresh_url)
    search = store.get_search("tight-latency")
    arch = {"mixers": ["pooling", "pooling", "sepconv", "hilo"], "depths": [2, 2, 4, 2], "dims": [32, 64, 128, 192]}
    tid = store.start_trial(search.id, arch=arch, recipe=RECIPE, device_kind=DEVICE)
    store.record_measurement(tid, Measurement(params=1_500_000, gmacs=0.1, latency_ms=3.0, throughput=3000.0, protocol=PROTOCOL))
    store.record_epoch(tid, 1, dict(val_accuracy=0.88), best_accuracy=0.88)
    st.cache_data.clear()  # stands in for the 2 s TTL expiring
    at.run()
    assert int(metric(at, "Trials")) == before + 1

    store.update_search("tight-latency", status="finished")
    st.cache_data.clear()
    at.run()
    assert not at.exception
    assert "refreshes every" not in texts(at.sidebar.caption)


def test_frames_are_defensive_and_filters_compose():
    assert arch_view(None).label == UNREADABLE and arch_view({"mixers": "x"}).mixers == []
    def record(i, status, arch, accuracy, throughput):
        return TrialRecord(id=i, search="s", number=i, status=status, arch=arch, arch_hash=str(i), recipe=None,
                           recipe_hash="r", accuracy=accuracy, throughput=throughput)

    trials = [
        record(1, TrialStatus.COMPLETED, {"mixers": ["a", "b"]}, 0.9, 100.0),
        record(2, TrialStatus.COMPLETED, {"mixers": ["a", "c"]}, 0.8, 200.0),
        record(3, TrialStatus.COMPLETED, {"mixers": ["b", "c"]}, 0.7, 150.0),
        record(4, TrialStatus.INFEASIBLE, None, None, 300.0),
    ]
    df = trials_frame(trials)
    assert list(df.loc[df["on_front"], "id"]) == [1, 2]
    assert list(filter_trials(df, stage_mixers={1: ["a"], 2: ["c"]})["id"]) == [2]
    assert list(filter_trials(df, throughput_range=(150.0, None))["id"]) == [2, 3, 4]
    assert list(filter_trials(df, accuracy_range=(75.0, 100.0))["id"]) == [1, 2]
    counts = front_mixer_counts(trials)
    assert counts.loc["Stage 1", "a"] == 2 and counts.loc["Stage 2", "b"] == 1 and counts.loc["Stage 2", "c"] == 1


def test_db_url_comes_from_script_args_then_environment():
    assert resolve_db_url(["--db", "x.db"], {DB_ENV: "sqlite:///y.db"}) == "sqlite:///x.db"
    assert resolve_db_url([], {DB_ENV: "sqlite:///y.db"}) == "sqlite:///y.db"
    assert resolve_db_url([], {}) == "sqlite:///nas.db"


def test_nas_dashboard_rejects_a_missing_db_in_one_line(tmp_path, capsys):
    assert nas_main(["dashboard", "--db", str(tmp_path / "nope.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "does not exist" in err and "\n" not in err


def test_nas_dashboard_rejects_a_busy_port(fixture_url, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert nas_main(["dashboard", "--db", fixture_url, "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_streamlit_is_started_headless_on_localhost_without_telemetry():
    cmd = command.streamlit_command("127.0.0.1", 8600)
    flags = dict(zip(cmd[5::2], cmd[6::2]))
    assert flags["--server.headless"] == "true" and flags["--server.address"] == "127.0.0.1"
    assert flags["--browser.gatherUsageStats"] == "false" and flags["--server.fileWatcherType"] == "none"
    assert flags["--client.showErrorDetails"] == "type"  # never a traceback on the page
    assert "--db" not in cmd  # the URL (and any password in it) travels in the environment, not argv
    assert command.streamlit_env("sqlite:////abs/nas.db")[DB_ENV] == "sqlite:////abs/nas.db"
    assert command.absolute_url("rel/nas.db") == f"sqlite:///{Path('rel/nas.db').resolve()}"


def _figure(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def test_front_is_final_fidelity_by_default_and_the_toggle_adds_early_stopped_trials(monkeypatch, fresh_url):
    """A fast early-stopped trial stays off the front (its accuracy is from 1 of 4 epochs) until the toggle is on;
    its row and its hover say at which epoch it stopped."""
    store = open_store(fresh_url)
    search = store.get_search("hybrid-demo")
    arch = {"mixers": ["pooling"] * 4, "depths": [1, 1, 1, 1], "dims": [32, 64, 128, 192]}
    fast = store.start_trial(search.id, arch=arch, recipe=RECIPE, device_kind=DEVICE)
    store.record_measurement(fast, Measurement(params=500_000, gmacs=0.02, latency_ms=0.5, throughput=90_000.0,
                                               protocol=PROTOCOL))
    store.record_epoch(fast, 1, dict(val_accuracy=0.5), best_accuracy=0.5)
    store.finish_trial(fast, TrialStatus.STOPPED, device_hours=0.001)
    trials = store.trials(search="hybrid-demo")
    completed_front = [t.id for t in pareto_front(trials)]
    full_front = [t.id for t in pareto_front(trials, include_stopped=True)]
    assert fast not in completed_front and fast in full_front

    at = run_app(monkeypatch, fresh_url, "hybrid-demo")
    toggle = at.toggle(key="front_include_stopped")
    assert toggle.value is False and "(3 in this search)" in toggle.label
    table = at.dataframe[0].value.set_index("id")
    assert sorted(table.index[table["on_front"]]) == sorted(completed_front)
    stopped = {t.id: t.epochs_done for t in trials if t.status == TrialStatus.STOPPED}
    assert table.loc[list(stopped), "stopped_at_epoch"].tolist() == list(stopped.values())
    assert table.loc[fast, "stopped_at_epoch"] == 1 and table.loc[fast, "epochs_done"] == 1
    assert table["stopped_at_epoch"].drop(index=list(stopped)).isna().all()
    assert metric(at, "Pareto front") == f"{len(completed_front)} trials"
    figure = _figure(at)
    front_trace = next(t for t in figure["data"] if t.get("meta", {}).get("role") == "front")
    assert sorted(int(c[0]) for c in front_trace["customdata"]) == sorted(completed_front)
    stopped_trace = next(t for t in figure["data"] if t.get("name") == "early-stopped")
    notes = {int(c[0]): c[-1] for c in stopped_trace["customdata"]}
    assert "stopped early at epoch 1 of 4" in notes[fast]

    at.toggle(key="front_include_stopped").set_value(True).run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("id")
    assert sorted(table.index[table["on_front"]]) == sorted(full_front)
    assert metric(at, "Pareto front") == f"{len(full_front)} trials"
    front_trace = next(t for t in _figure(at)["data"] if t.get("meta", {}).get("role") == "front")
    assert fast in {int(c[0]) for c in front_trace["customdata"]}
