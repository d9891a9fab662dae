"""Reference models measured beside searches: store round trip and migration, reuse per device kind,
the driver's hook (with tiny stand-in models), ``nas show-reference`` and the dashboard's markers."""
from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from nas.cli import main as nas_main
from nas.references import references_apply, references_for_search
from nas.search import references as hook
from nas.store import (
    SCHEMA_VERSION, Measurement, ReferenceMeasurement, open_store, record_reference, reference_measurements,
)
from nas.store.models import Base
from nas.trial.measure_settings import MeasureSettings

KIND, OTHER_KIND = "cpu:Test CPU x1", "cuda:Test GPU"
CPU_MEASURE = MeasureSettings.defaults_for(False)  # 224, batch 1 / 32
TINY = MeasureSettings(target_res=224, throughput_batch=2, warmup=0, repeats=2)


def protocol(measure: MeasureSettings = CPU_MEASURE, kind: str = KIND, torch_version: str = "2.14.1") -> dict:
    """What ``measure_speed`` records (the keys that matter here)."""
    return {"img_size": measure.target_res, "latency_batch": measure.latency_batch,
            "throughput_batch": measure.throughput_batch, "warmup": measure.warmup, "repeats": measure.repeats,
            "device": kind, "dtype": "float32", "torch": torch_version}


def reference(model: str, throughput: float, kind: str = KIND, **changes) -> ReferenceMeasurement:
    values = dict(model=model, device_kind=kind, params=27_844_000, gmacs=3.7, latency_ms=25.0, latency_iqr_ms=0.5,
                  throughput=throughput, throughput_iqr=2.0, protocol=protocol(kind=kind),
                  uncounted_ops=("aten::fft_rfft2",))
    return ReferenceMeasurement(**{**values, **changes})


@pytest.fixture
def store(tmp_path: Path):
    opened = open_store(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    yield opened
    opened.close()


def make_search(store, name: str = "flagship", target_res: int = 224, device_kind: str | None = KIND,
                measure: MeasureSettings | None = None):
    measure = measure or MeasureSettings.defaults_for(False, target_res=target_res)
    return store.create_search(name, space="hybrid_metaformer", space_description={}, budget_kind="trials",
                               config={"measure": measure.to_dict()}, budget_total=4, budget_text="4trials",
                               device_kind=device_kind)


# ------------------------------------------------------------------ store


def test_round_trip_overwrite_and_filters(store):
    record_reference(store, reference("litv2_s", 120.0))
    record_reference(store, reference("litv2_s", 125.0))  # same model, kind and exact protocol: overwritten
    record_reference(store, reference("dynamixer_s", 80.0))
    record_reference(store, reference("litv2_s", 900.0, kind=OTHER_KIND))
    newer = protocol(torch_version="2.15.0")  # same settings, another torch: a new row, the newest wins
    record_reference(store, reference("dynamixer_s", 95.0, protocol=newer))

    rows = reference_measurements(store, device_kinds={KIND})
    assert [(r.model, r.throughput) for r in rows] == [("dynamixer_s", 95.0), ("litv2_s", 125.0)]
    lit = rows[1]
    assert (lit.params, lit.gmacs, lit.latency_ms, lit.uncounted_ops) == (27_844_000, 3.7, 25.0, ("aten::fft_rfft2",))
    assert lit.protocol == protocol() and lit.measured_at
    assert json.loads(json.dumps(lit.to_json()))["uncounted_ops"] == ["aten::fft_rfft2"]
    assert len(reference_measurements(store, latest=False)) == 4  # every protocol kept
    assert [r.device_kind for r in reference_measurements(store, models={"litv2_s"})] == [KIND, OTHER_KIND]
    other_batch = MeasureSettings.defaults_for(False, throughput_batch=64)
    assert reference_measurements(store, accept=other_batch.same_protocol) == []


def test_search_sees_references_of_its_device_kinds_and_protocol_at_224_only(store):
    record_reference(store, reference("litv2_s", 120.0))
    record_reference(store, reference("litv2_s", 900.0, kind=OTHER_KIND))
    flagship = make_search(store)
    assert [r.device_kind for r in references_for_search(store, flagship)] == [KIND]
    cluster = make_search(store, "cluster", device_kind=None)  # kinds come from its trials
    assert references_for_search(store, cluster) == []
    trial = store.start_trial(cluster.id, arch={"mixers": ["mhsa"]}, recipe={}, device_kind=OTHER_KIND)
    store.record_measurement(trial, Measurement(params=1, gmacs=1.0, latency_ms=1.0, throughput=1.0,
                                                device_kind=OTHER_KIND))
    assert [r.device_kind for r in references_for_search(store, cluster)] == [OTHER_KIND]
    tiny = make_search(store, "tiny", target_res=32)
    assert not references_apply(MeasureSettings(target_res=32)) and references_for_search(store, tiny) == []
    bigger_batch = make_search(store, "batch64", measure=MeasureSettings.defaults_for(False, throughput_batch=64))
    assert references_for_search(store, bigger_batch) == []


def write_schema_2_store(path: Path) -> None:
    """A store as schema 2 wrote it: today's tables minus ``reference_measurements``, version 2."""
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine, tables=[t for t in Base.metadata.sorted_tables
                                             if t.name != "reference_measurements"])
    engine.dispose()
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO version_info (id, schema_version, library_version) VALUES (1, 2, '0.2.0')")


def test_schema_2_store_gains_the_table_in_place(tmp_path):
    path = tmp_path / "old.db"
    write_schema_2_store(path)
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.schema_version == SCHEMA_VERSION >= 3
        record_reference(store, reference("litv2_s", 120.0))
        assert [r.model for r in reference_measurements(store)] == ["litv2_s"]
    finally:
        store.close()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT schema_version FROM version_info").fetchone() == (SCHEMA_VERSION,)


def test_read_only_schema_2_store_reads_with_no_references(tmp_path, monkeypatch):
    import nas.store.engine as engine
    from nas.store.migrations import MigrationError

    def read_only(*args):
        raise MigrationError("attempt to write a readonly database")

    path = tmp_path / "old.db"
    write_schema_2_store(path)
    monkeypatch.setattr(engine, "migrate", read_only)
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.schema_version == 2 and reference_measurements(store) == []
    finally:
        store.close()


# ------------------------------------------------------------------ measuring and reuse


def test_measure_references_skips_what_its_device_kind_has_and_reports_failures():
    import torch

    from nas.device import device_kind

    kind = device_kind("cpu")  # threads set to 1 below, as the hook's ``cpus`` says
    torch.set_num_threads(1)
    outcome = hook.measure_references(["test_resnet", "test_convnext", "no_such_model"], TINY,
                                      {kind: ["test_convnext"], OTHER_KIND: ["test_resnet"]}, torch.device("cpu"), 1)
    assert outcome.device_kind == kind
    (measured,) = outcome.measured
    assert measured.model == "test_resnet" and measured.device_kind == kind
    assert measured.params > 0 and measured.gmacs > 0 and measured.throughput > 0 and measured.latency_ms > 0
    assert measured.protocol["img_size"] == 224 and measured.protocol["throughput_batch"] == 2
    assert TINY.same_protocol(measured.protocol)
    assert [name for name, _ in outcome.failed] == ["no_such_model"]
    assert "no_such_model" in outcome.failed[0][1] and "\n" not in outcome.failed[0][1]


def test_hook_starts_nothing_when_the_local_device_kind_has_them_all(store, monkeypatch):
    monkeypatch.setattr(hook, "REFERENCE_MODELS", ("litv2_s", "dynamixer_s"))
    for name in hook.REFERENCE_MODELS:
        record_reference(store, reference(name, 100.0, protocol=protocol(CPU_MEASURE)))
    out = io.StringIO()
    search = make_search(store)
    assert hook.measure_references_beside_search(store, search, CPU_MEASURE, gpus_per_trial=0, cpus_per_trial=1,
                                                 lock_dir=None, out=out) is None  # no Ray needed
    assert "2 stored for cpu:Test CPU x1" in out.getvalue()
    tiny = MeasureSettings(target_res=32)
    assert hook.measure_references_beside_search(store, search, tiny, gpus_per_trial=0, cpus_per_trial=1,
                                                 lock_dir=None, out=out) is None
    assert out.getvalue().count("\n") == 1  # a 32 px search says nothing about references


@pytest.mark.ray
def test_hook_measures_the_missing_ones_on_a_trial_slot_then_reuses_them(ray_local, store, tmp_path, monkeypatch):
    monkeypatch.setattr(hook, "REFERENCE_MODELS", ("test_resnet", "no_such_model"))
    monkeypatch.setattr(hook, "WAIT_S", 0.05)
    out, beats = io.StringIO(), []
    search = make_search(store, measure=TINY, device_kind=None)  # a cluster search: kind learnt from the task
    outcome = hook.measure_references_beside_search(store, search, TINY, gpus_per_trial=1, cpus_per_trial=1,
                                                    lock_dir=str(tmp_path / "locks"), out=out,
                                                    heartbeat=lambda: beats.append(1) or True)
    assert beats  # the driver's lease kept fresh while the task ran
    assert outcome is not None and [m.model for m in outcome.measured] == ["test_resnet"]
    assert outcome.device_kind.startswith("cpu:")  # a fake GPU: the trial's device is the CPU
    (stored,) = reference_measurements(store)
    assert (stored.model, stored.device_kind) == ("test_resnet", outcome.device_kind)
    text = out.getvalue()
    assert "measuring test_resnet, no_such_model" in text and "not charged to the budget" in text
    assert "reference model no_such_model not measured" in text

    local = make_search(store, "local", measure=TINY, device_kind=outcome.device_kind)
    assert hook.measure_references_beside_search(store, local, TINY, gpus_per_trial=1, cpus_per_trial=1,
                                                 lock_dir=None, out=out, names=["test_resnet"]) is None
    assert f"1 stored for {outcome.device_kind}" in out.getvalue()  # reused: no task, nothing measured again
    assert len(reference_measurements(store, latest=False)) == 1

    lost = hook.measure_references_beside_search(store, local, TINY, gpus_per_trial=1, cpus_per_trial=1,
                                                 lock_dir=None, out=out, names=["test_convnext"],
                                                 heartbeat=lambda: False)  # taken over: give up at once
    assert lost is None and "abandoned" in out.getvalue()
    assert [r.model for r in reference_measurements(store)] == ["test_resnet"]


# ------------------------------------------------------------------ nas show-reference


def test_show_reference_table_json_and_errors(store, capsys, tmp_path):
    url = store.url
    record_reference(store, reference("litv2_s", 120.0))
    record_reference(store, reference("dfformer_s18", 90.0, kind=OTHER_KIND))
    make_search(store)
    make_search(store, "tiny", target_res=32)

    assert nas_main(["show-reference", "--db", url]) == 0
    table = capsys.readouterr().out
    assert "LITv2-S" in table and "DFFormer-S18" in table and "224px b1/b32 w10 r30 float32" in table

    assert nas_main(["show-reference", "--db", url, "--search", "flagship", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["label"], row["model"], row["throughput"], row["device_kind"]) == ("LITv2-S", "litv2_s", 120.0, KIND)

    assert nas_main(["show-reference", "--db", url, "--search", "tiny"]) == 0
    assert "measures speed at 32 px" in capsys.readouterr().out
    assert nas_main(["show-reference", "--db", url, "--search", "nope"]) == 2
    assert "no search named 'nope'" in capsys.readouterr().err
    assert nas_main(["show-reference", "--db", str(tmp_path / "missing.db")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


# ------------------------------------------------------------------ dashboard


def pareto_spec(at) -> dict:
    """The Pareto chart's plotly JSON (the chart with trial points)."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if any((t.get("meta") or {}).get("role") == "trials" for t in spec["data"]):
            return spec
    raise AssertionError("no Pareto chart on the page")


def test_dashboard_draws_labelled_throughput_lines_not_points(monkeypatch, tmp_path):
    import math
    import random

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import DB_ENV
    from dashboard_fixture import DEVICE, HYBRID_DEMO, RECIPE, _run_trial, build_fixture_db

    url = build_fixture_db(tmp_path / "nas.db")
    store = open_store(url)
    flagship = store.create_search(
        "flagship", space="hybrid_metaformer", space_description={"stages": 4}, budget_kind="trials",
        config={"strategy": "random", "recipe": RECIPE, "measure": CPU_MEASURE.to_dict()}, budget_total=4,
        budget_text="4trials", device_kind=DEVICE)
    rng = random.Random(3)
    for seed, mixers, outcome in HYBRID_DEMO[:6]:
        _run_trial(store, flagship.id, seed, mixers, outcome, rng)
    store.update_search("flagship", status="finished")
    here = dict(kind=DEVICE, protocol=protocol(kind=DEVICE))
    record_reference(store, reference("litv2_s", 4_000.0, **here))
    record_reference(store, reference("dynamixer_s", 1_000.0, **here))
    record_reference(store, reference("dfformer_s18", 3_000.0, kind=OTHER_KIND))  # another device: not drawn
    store.close()

    monkeypatch.setenv(DB_ENV, url)
    st.cache_data.clear()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=60)
    at.query_params["search"] = "flagship"
    at.run()
    assert not at.exception, at.exception
    spec = pareto_spec(at)
    lines = [t for t in spec["data"] if (t.get("meta") or {}).get("role") == "reference"]
    assert {t["meta"]["model"]: set(t["x"]) for t in lines} == {"litv2_s": {4_000.0}, "dynamixer_s": {1_000.0}}
    assert all(t["mode"] == "lines" and len(t["y"]) > 2 for t in lines)  # a vertical line, never a point
    assert [t["showlegend"] for t in sorted(lines, key=lambda t: t["x"][0])] == [True, False]  # one legend entry
    labels = {a["text"]: a["x"] for a in spec["layout"]["annotations"]}
    assert labels["LITv2-S"] == pytest.approx(math.log10(4_000.0)) and "DynaMixer-S" in labels
    low, high = spec["layout"]["xaxis"]["range"]
    assert low < math.log10(1_000.0) and math.log10(4_000.0) < high  # both lines inside the x range
    captions = "\n".join(str(c.value) for c in at.caption)
    assert "DynaMixer-S, LITv2-S" in captions and "not comparable with proxy accuracy" in captions

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=60)
    at.query_params["search"] = "hybrid-demo"  # measured at 64 px: no reference lines
    at.run()
    assert not any((t.get("meta") or {}).get("role") == "reference" for t in pareto_spec(at)["data"])


# ------------------------------------------------------------------ the driver's hook in a real search


def write_224_space(path: Path) -> str:
    """A toy space whose speed is measured at 224 (the reference models' resolution), trained at 32."""
    space = {"name": "toy224", "target_res": 224, "proxy_res": 32,
             "stages": [{"mixer": ["sepconv"], "depth": [1], "width": [16]} for _ in range(4)],
             "seeds": [{"name": "all-sepconv", "mixers": ["sepconv"] * 4, "depths": [1] * 4, "dims": [16] * 4}]}
    path.write_text(json.dumps(space))
    return str(path)


@pytest.mark.ray
def test_search_at_224_measures_references_first_and_the_next_search_reuses_them(ray_local, tmp_path, monkeypatch):
    from nas.search import SearchRequest, prepare_search, run_search

    monkeypatch.setattr(hook, "REFERENCE_MODELS", ("test_resnet",))
    space, db = write_224_space(tmp_path / "toy224.json"), f"sqlite:///{tmp_path / 'nas.db'}"
    outputs = []
    for name in ("first", "second"):
        request = SearchRequest(space=space, budget="1trials", strategy="random", db=db, name=name,
                                dataset="digits", epochs=1, subset=64, warmup=0, repeats=2, throughput_batch=2)
        out = io.StringIO()
        run_search(prepare_search(request), out=out)
        outputs.append(out.getvalue())
    assert "reference models: measuring test_resnet" in outputs[0]
    assert "reference models: 1 stored for" in outputs[1] and "measuring" not in outputs[1]
    store = open_store(db)
    try:
        (trial,) = store.trials(search="first")
        (stored,) = reference_measurements(store, latest=False)
        assert stored.device_kind == trial.device_kind  # measured where the trials run, as they are
        assert {k: stored.protocol[k] for k in ("img_size", "latency_batch", "throughput_batch", "repeats")} == \
            {k: trial.protocol[k] for k in ("img_size", "latency_batch", "throughput_batch", "repeats")}
        assert [r.model for r in references_for_search(store, store.get_search("second"))] == ["test_resnet"]
    finally:
        store.close()


def test_no_references_flag_reaches_the_prepared_search(tmp_path):
    from nas.cli import build_parser
    from nas.search import SearchRequest, prepare_search

    space = write_224_space(tmp_path / "toy224.json")
    args = build_parser().parse_args(["search", "--space", space, "--budget", "1trials", "--no-references",
                                      "--db", f"sqlite:///{tmp_path / 'nas.db'}"])
    request = SearchRequest.from_args(args)
    assert request.references is False and prepare_search(request).references is False
    assert prepare_search(SearchRequest(space=space, budget="1trials", db=args.db)).references is True
