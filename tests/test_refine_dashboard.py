"""The dashboard with refined trials (``nas refine``), under Streamlit's AppTest: Kendall's tau in the
summary, refined accuracy beside the proxy accuracy in the table, a second marker on the Pareto chart
joined to each refined trial's point; nothing of it for a search without refinements."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from scipy.stats import kendalltau
from streamlit.testing.v1 import AppTest

from dashboard.data import DB_ENV
from nas.front import pareto_front
from nas.store import TrialStatus, finish_refinement, open_store, record_refinement_epoch, start_refinement

from dashboard_fixture import RECIPE, build_fixture_db

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def refined_url(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[int, float]]:
    """The dashboard fixture with the front of ``hybrid-demo`` and two more trials refined at 8 epochs
    (one more refinement failed: not shown), and one trial also refined at 6 epochs."""
    url = build_fixture_db(tmp_path_factory.mktemp("refined") / "nas.db")
    store = open_store(url)
    trials = store.trials(search="hybrid-demo")
    front = [t.id for t in pareto_front(trials)]
    others = [t.id for t in trials if t.status == TrialStatus.COMPLETED and t.id not in front]
    refined = {}
    for i, trial_id in enumerate(front + others[:2]):
        rid = start_refinement(store, trial_id, {**RECIPE, "epochs": 8})
        accuracy = 0.5 + 0.05 * ((i * 3) % 5)
        record_refinement_epoch(store, rid, 8, {"val_accuracy": accuracy}, best_accuracy=accuracy)
        finish_refinement(store, rid, TrialStatus.COMPLETED, accuracy=accuracy)
        refined[trial_id] = accuracy
    rid = start_refinement(store, others[2], {**RECIPE, "epochs": 8})
    finish_refinement(store, rid, TrialStatus.FAILED, error="RuntimeError: boom")
    rid = start_refinement(store, front[0], {**RECIPE, "epochs": 6})
    finish_refinement(store, rid, TrialStatus.COMPLETED, accuracy=0.99)
    store.close()
    return url, refined


def run_app(monkeypatch: pytest.MonkeyPatch, url: str, search: str) -> AppTest:
    monkeypatch.setenv(DB_ENV, url)
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["search"] = search
    at.run()
    assert not at.exception, at.exception
    return at


def test_refined_accuracy_tau_and_markers(monkeypatch, refined_url):
    url, refined = refined_url
    trials = {t.id: t for t in open_store(url).trials(search="hybrid-demo")}
    at = run_app(monkeypatch, url, "hybrid-demo")

    expected = kendalltau([trials[i].accuracy for i in refined], list(refined.values())).statistic
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Kendall tau, proxy vs 8 epochs"] == f"{expected:.3f}"
    assert metrics["Kendall tau, proxy vs 6 epochs"] == "–"  # one trial: undefined

    table = at.dataframe[0].value.set_index("id")
    shown = table["refined_accuracy"].dropna()
    assert sorted(shown.index) == sorted(refined)
    for trial_id, accuracy in refined.items():
        assert shown[trial_id] == pytest.approx(accuracy * 100)
        assert table.loc[trial_id, "refined_epochs"] == 8
    assert list(table.columns).index("refined_accuracy") == list(table.columns).index("accuracy") + 1

    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    marks = next(t for t in figure["data"] if t.get("meta", {}).get("role") == "refined")
    points = {int(c[0]): (c[1], c[2], y) for c, y in zip(marks["customdata"], marks["y"])}
    assert sorted(points) == sorted(refined)
    for trial_id, (epochs, proxy, y) in points.items():
        assert epochs == 8 and proxy == pytest.approx(trials[trial_id].accuracy * 100)
        assert y == pytest.approx(refined[trial_id] * 100)
    assert marks["x"] == [trials[i].throughput for i in points]
    link = next(t for t in figure["data"] if t.get("meta", {}).get("role") == "refined-link")
    assert len(link["x"]) == 3 * len(refined) and link["y"][:2] == [points[next(iter(points))][1],
                                                                      points[next(iter(points))][2]]


def test_a_search_without_refinements_shows_none_of_it(monkeypatch, refined_url):
    url, _ = refined_url
    at = run_app(monkeypatch, url, "tight-latency")
    assert not [m for m in at.metric if m.label.startswith("Kendall tau")]
    assert at.dataframe[0].value["refined_accuracy"].isna().all()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not [t for t in figure["data"] if t.get("meta", {}).get("role", "").startswith("refined")]
