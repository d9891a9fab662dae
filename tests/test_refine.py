"""``nas refine`` without Ray: which trials it picks, the refined recipe, Kendall's tau and the report,
the ``refinements`` table (linking, reuse, schema 3 -> 4 migration), the recorder fed fake Tune
events, and every refused input (one line, exit 2)."""
from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from safetensors.torch import save_file
from scipy.stats import kendalltau
from sqlalchemy import create_engine
import torch

from nas.cli import main
from nas.errors import UsageError
from nas.front import pareto_front
from nas.refine import check_top, refine_report, refined_recipe, select_candidates
from nas.search.refine_recorder import INTERRUPTED, REFINES_KEY, RefineRecorder
from nas.search.settings import EarlyStopping, SearchSettings
from nas.store import (SCHEMA_VERSION, Measurement, StoreError, TrialStatus, finish_refinement, open_store,
                       record_refinement_epoch, refinements, start_refinement)
from nas.store.models import Base
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe

RECIPE = ProxyRecipe(dataset="digits", epochs=2, subset=200)
PROTOCOL = {"img_size": 32, "latency_batch": 1, "throughput_batch": 8, "warmup": 1, "repeats": 3}
ARCH_DEPTHS, ARCH_DIMS = [1, 1, 1, 1], [16, 32, 32, 64]


def arch(*mixers: str) -> dict:
    return {"mixers": list(mixers), "depths": ARCH_DEPTHS, "dims": ARCH_DIMS, "mixer_kwargs": [{}, {}, {}, {}]}


# (mixers, status, accuracy, throughput): two on the front (fast/less accurate, slow/accurate), three
# behind it, one early-stopped (never chosen), one infeasible, one failed
TRIALS = [
    (arch("sepconv", "sepconv", "sepconv", "sepconv"), TrialStatus.COMPLETED, 0.60, 900.0),
    (arch("mhsa", "mhsa", "mhsa", "mhsa"), TrialStatus.COMPLETED, 0.80, 300.0),
    (arch("sepconv", "sepconv", "mhsa", "mhsa"), TrialStatus.COMPLETED, 0.70, 250.0),
    (arch("dma", "dma", "dma", "dma"), TrialStatus.COMPLETED, 0.55, 200.0),
    (arch("hilo", "hilo", "hilo", "hilo"), TrialStatus.COMPLETED, 0.65, 100.0),
    (arch("msda", "msda", "msda", "msda"), TrialStatus.STOPPED, 0.79, 280.0),
    (arch("dynamixer", "dynamixer", "dynamixer", "dynamixer"), TrialStatus.INFEASIBLE, None, 10.0),
    (arch("dynamic_filter", "dynamic_filter", "dynamic_filter", "dynamic_filter"), TrialStatus.FAILED, None, None),
]


def make_store(path: Path, trials=TRIALS, name: str = "s1") -> tuple[str, list[int]]:
    """A search as ``nas search`` stores it (settings, trials measured and trained through the Store API)."""
    url = f"sqlite:///{path}"
    store = open_store(url, create=True)
    settings = SearchSettings(space="hybrid_metaformer_tiny", strategy="random", seed=0, recipe=RECIPE,
                              measure=MeasureSettings(target_res=32, throughput_batch=8, warmup=1, repeats=3),
                              early_stopping=EarlyStopping.NONE)
    config = {**settings.to_config(), "gpus_per_trial": 0.0, "cpus_per_trial": 1.0, "max_concurrent": None,
              "data_dir": None}
    search = store.create_search(name, space="hybrid_metaformer_tiny", space_description={}, config=config,
                                 budget_kind="trials", budget_total=10, budget_text="10trials", device_kind="cpu:x")
    ids = []
    for a, status, accuracy, throughput in trials:
        tid = store.start_trial(search.id, arch=a, recipe=RECIPE.to_dict(), devices_held=1.0)
        if throughput is not None:
            store.record_measurement(tid, Measurement(params=1000, gmacs=0.01, latency_ms=1000 / throughput,
                                                      throughput=throughput, protocol=PROTOCOL, device_kind="cpu:x"))
        if accuracy is not None:
            store.record_epoch(tid, 1, {"val_accuracy": accuracy}, best_accuracy=accuracy)
        store.finish_trial(tid, status, accuracy=accuracy, device_hours=0.001)
        ids.append(tid)
    store.update_search(name, status="finished")
    store.close()
    return url, ids


@pytest.fixture
def stored(tmp_path: Path) -> tuple[str, list[int]]:
    return make_store(tmp_path / "nas.db")


def refine(db: str, *args: str) -> list[str]:
    return ["refine", "--db", db, *args]


# ------------------------------------------------------------------ selection, recipe, tau


def test_candidates_are_the_front_then_the_most_accurate_other_completed_trials(stored):
    url, ids = stored
    trials = open_store(url).trials(search="s1")
    front = [t.id for t in pareto_front(trials)]
    assert front == [ids[1], ids[0]]  # by throughput: 300 img/s (0.80), 900 img/s (0.60)
    chosen = select_candidates(trials, top=2)
    assert [c.trial.id for c in chosen] == [ids[1], ids[0], ids[2], ids[4]]  # others: 0.70, 0.65; 0.79 is stopped
    assert [c.on_front for c in chosen] == [True, True, False, False]
    assert [c.trial.id for c in select_candidates(trials, top=10)] == [ids[1], ids[0], ids[2], ids[4], ids[3]]


def test_a_reused_copy_of_a_chosen_architecture_is_not_refined_twice(tmp_path):
    twin = (TRIALS[2][0], TrialStatus.COMPLETED, 0.69, 240.0)  # same architecture as the 0.70 trial
    url, ids = make_store(tmp_path / "nas.db", trials=[*TRIALS[:5], twin])
    chosen = select_candidates(open_store(url).trials(search="s1"), top=3)
    assert [c.trial.id for c in chosen] == [ids[1], ids[0], ids[2], ids[4], ids[3]]


def test_refined_recipe_only_raises_the_epochs_and_must_exceed_the_proxy():
    refined = refined_recipe(RECIPE, 5)
    assert refined.epochs == 5 and dataclasses.replace(refined, epochs=RECIPE.epochs) == RECIPE
    for epochs, message in ((2, "--epochs 2 is not above the search's proxy epochs (2)"),
                            (1, "is not above"), (0, "--epochs must be >= 1"), (-3, "--epochs must be >= 1")):
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            refined_recipe(RECIPE, epochs)
    with pytest.raises(UsageError, match="--top must be >= 1"):
        check_top(0)


def _record(trial_id: int, accuracy: float | None, status=TrialStatus.COMPLETED):
    from nas.store import RefinementRecord

    return RefinementRecord(id=100 + trial_id, trial_id=trial_id, search="s1", epochs=8, recipe=None,
                            recipe_hash="h", status=status, accuracy=accuracy, epochs_done=8)


def test_report_has_kendall_tau_over_the_trials_with_both_accuracies(stored):
    url, ids = stored
    trials = open_store(url).trials(search="s1")
    chosen = select_candidates(trials, top=3)  # proxy 0.80, 0.60, 0.70, 0.65, 0.55
    refined_acc = {ids[1]: 0.85, ids[0]: 0.70, ids[2]: 0.66, ids[4]: 0.75}  # ids[3]'s refinement failed
    records = {tid: _record(tid, acc) for tid, acc in refined_acc.items()}
    records[ids[3]] = _record(ids[3], 0.4, status=TrialStatus.FAILED)
    report = refine_report("s1", 2, 8, chosen, records, reused=[ids[1]])
    proxy = {t.id: t.accuracy for t in trials}
    expected = kendalltau([proxy[i] for i in refined_acc], list(refined_acc.values()))
    assert report.pairs == 4 and report.agreement.tau == pytest.approx(expected.statistic)
    assert report.agreement.p_value == pytest.approx(expected.pvalue)
    assert not report.complete  # the failed refinement has no refined accuracy
    text = report.format()
    assert text.splitlines()[-1] == (f"Kendall tau between proxy (2 epochs) and refined (8 epochs) accuracy over 4 "
                                     f"trial(s): {expected.statistic:.3f} (p = {expected.pvalue:.2g})")
    row = next(line for line in text.splitlines() if line.startswith(str(ids[1])))
    assert "0.800" in row and "0.850" in row and "reused, front" in row and "mhsa-1x16 | mhsa-1x32" in row
    failed = next(line for line in text.splitlines() if line.startswith(str(ids[3])))
    assert "failed" in failed and "0.550" in failed
    data = report.to_json()
    assert data["kendall_tau"] == pytest.approx(expected.statistic) and data["pairs"] == 4
    assert [t["trial"] for t in data["trials"]] == [c.trial.id for c in chosen]
    assert next(t for t in data["trials"] if t["trial"] == ids[3])["refined_accuracy"] is None


def test_tau_is_undefined_for_one_trial_or_no_difference(stored):
    url, ids = stored
    chosen = select_candidates(open_store(url).trials(search="s1"), top=1)
    one = refine_report("s1", 2, 4, chosen, {ids[1]: _record(ids[1], 0.9)})
    assert one.agreement is None and one.pairs == 1
    assert one.tau_line().endswith("over 1 trial(s): n/a (needs two trials with different accuracies)")
    flat = refine_report("s1", 2, 4, chosen, {c.trial.id: _record(c.trial.id, 0.5) for c in chosen})
    assert flat.agreement is None and flat.pairs == 3 and flat.to_json()["kendall_tau"] is None


# ------------------------------------------------------------------ the refinements table


def test_refinement_is_linked_to_its_trial_and_leaves_the_trial_untouched(stored):
    url, ids = stored
    store = open_store(url)
    before = store.trial(ids[0])
    recipe = refined_recipe(RECIPE, 4).to_dict()
    rid = start_refinement(store, ids[0], recipe, tune_trial_id="t1", devices_held=1.0)
    record_refinement_epoch(store, rid, 1, {"val_accuracy": 0.5, "train_loss": 1.0}, best_accuracy=0.5,
                            device_hours=0.01, device_kind="cpu:x")
    record_refinement_epoch(store, rid, 2, {"val_accuracy": 0.7}, best_accuracy=0.7, device_hours=0.02)
    finish_refinement(store, rid, TrialStatus.COMPLETED, accuracy=0.7, device_hours=0.03)
    [r] = refinements(store, search="s1")
    assert (r.id, r.trial_id, r.search, r.epochs, r.recipe, r.status) == (rid, ids[0], "s1", 4, recipe, "completed")
    assert r.completed and r.accuracy == 0.7 and r.epochs_done == 2 and r.device_hours == 0.03
    assert [e["epoch"] for e in r.curve] == [1, 2] and r.curve[0]["train_loss"] == 1.0
    assert r.device_kind == "cpu:x"
    assert store.trial(ids[0]) == before
    assert refinements(store, search="other") == [] and refinements(store, epochs=5) == []
    with pytest.raises(StoreError, match="already refined at 4 epochs"):
        start_refinement(store, ids[0], recipe)


def test_a_failed_refinement_is_started_over_in_place(stored):
    url, ids = stored
    store = open_store(url)
    recipe = refined_recipe(RECIPE, 3).to_dict()
    rid = start_refinement(store, ids[1], recipe)
    record_refinement_epoch(store, rid, 1, {"val_accuracy": 0.4}, best_accuracy=0.4)
    finish_refinement(store, rid, TrialStatus.FAILED, error="RuntimeError: boom")
    assert start_refinement(store, ids[1], recipe) == rid
    [r] = refinements(store)
    assert r.status == TrialStatus.RUNNING and r.error is None and r.curve == () and r.accuracy is None
    other = start_refinement(store, ids[1], refined_recipe(RECIPE, 6).to_dict())  # another fidelity: its own row
    assert other != rid and [x.epochs for x in refinements(store)] == [3, 6]
    with pytest.raises(StoreError, match="unknown trial"):
        start_refinement(store, 9999, recipe)


def write_schema_3_store(path: Path) -> None:
    """A store as schema 3 wrote it: today's tables minus ``refinements``, version 3."""
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine, tables=[t for t in Base.metadata.sorted_tables if t.name != "refinements"])
    engine.dispose()
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO version_info (id, schema_version, library_version) VALUES (1, 3, '0.3.0')")


def test_schema_3_store_gains_the_refinements_table_in_place(tmp_path):
    path = tmp_path / "old.db"
    write_schema_3_store(path)
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.schema_version == SCHEMA_VERSION == 4
        search = store.create_search("s", space="x", space_description={}, config={}, budget_kind="trials",
                                     budget_total=1, budget_text="1trials")
        tid = store.start_trial(search.id, arch=arch("sepconv", "sepconv", "sepconv", "sepconv"), recipe={})
        start_refinement(store, tid, {"epochs": 3})
        assert [r.trial_id for r in refinements(store)] == [tid]
    finally:
        store.close()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT schema_version FROM version_info").fetchone() == (4,)
        columns = {row[1] for row in con.execute("PRAGMA table_info(refinements)")}
    assert {"trial_id", "epochs", "recipe_hash", "accuracy", "curve_json", "weights_path"} <= columns


def test_read_only_schema_3_store_reads_with_no_refinements_and_refuses_to_store_one(tmp_path, monkeypatch):
    import nas.store.engine as engine
    from nas.store.migrations import MigrationError

    def read_only(*args):
        raise MigrationError("attempt to write a readonly database")

    path = tmp_path / "old.db"
    write_schema_3_store(path)
    monkeypatch.setattr(engine, "migrate", read_only)
    store = open_store(f"sqlite:///{path}")
    try:
        assert store.schema_version == 3 and refinements(store) == []
        with pytest.raises(StoreError, match="no refinement can be stored"):
            start_refinement(store, 1, {"epochs": 3})
    finally:
        store.close()


# ------------------------------------------------------------------ the recorder, fed Tune's events


def test_recorder_writes_refinements_from_tune_events(stored, tmp_path):
    url, ids = stored
    store = open_store(url)
    recipe = refined_recipe(RECIPE, 3).to_dict()
    clock = iter([0.0, 0.0, 36.0, 72.0, 108.0, 108.0, 200.0, 200.0, 300.0, 400.0]).__next__
    lines = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    recorder = RefineRecorder(store, epochs=3, devices=2.0, weights_dir=tmp_path / "refined", out=Out(), clock=clock)
    recorder.trial_started("a", {REFINES_KEY: ids[0], "recipe": recipe})
    recorder.trial_result("a", {"phase": "measure", "feasible": True, "throughput": 1.0, "device_kind": "cpu:y"})
    for epoch, acc in ((1, 0.5), (2, 0.72), (3, 0.7)):
        recorder.trial_result("a", {"phase": "epoch", "epoch": epoch, "val_accuracy": acc, "train_loss": 1 / epoch})
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    save_file({"w": torch.ones(2)}, str(checkpoint / "model.safetensors"))
    assert recorder.trial_completed("a", str(checkpoint)) == TrialStatus.COMPLETED
    recorder.trial_failed("b", {REFINES_KEY: ids[1], "recipe": recipe}, "RuntimeError: out of memory")
    recorder.trial_started("c", {REFINES_KEY: ids[2], "recipe": recipe})
    recorder.finish()
    done, failed, interrupted = refinements(store)
    assert done.trial_id == ids[0] and done.status == TrialStatus.COMPLETED and done.accuracy == 0.72
    assert [e["val_accuracy"] for e in done.curve] == [0.5, 0.72, 0.7] and done.device_kind == "cpu:y"
    assert done.device_hours == pytest.approx(108.0 * 2 / 3600)
    assert Path(done.weights_path) == (tmp_path / "refined" / f"{ids[0]}-3ep.safetensors").resolve()
    assert Path(done.weights_path).is_file()
    assert (failed.trial_id, failed.status, failed.error) == (ids[1], "failed", "RuntimeError: out of memory")
    assert (interrupted.trial_id, interrupted.status, interrupted.error) == (ids[2], "failed", INTERRUPTED)
    assert recorder.finished == {ids[0]: TrialStatus.COMPLETED, ids[1]: TrialStatus.FAILED,
                                 ids[2]: TrialStatus.FAILED}
    assert any(f"refining trial {ids[0]} at 3 epochs" in line for line in lines)


def test_a_trial_that_stops_short_is_not_a_completed_refinement(stored, tmp_path):
    url, ids = stored
    store = open_store(url)
    recorder = RefineRecorder(store, epochs=3, devices=1.0, weights_dir=tmp_path / "w", out=None)
    recorder.trial_started("a", {REFINES_KEY: ids[0], "recipe": refined_recipe(RECIPE, 3).to_dict()})
    recorder.trial_result("a", {"phase": "measure", "feasible": True})
    recorder.trial_result("a", {"phase": "epoch", "epoch": 1, "val_accuracy": 0.5})
    assert recorder.trial_completed("a", None) == TrialStatus.STOPPED
    [r] = refinements(store)
    assert not r.completed and r.weights_path is None


# ------------------------------------------------------------------ the command: reuse and refused input


def test_stored_refinements_are_reused_without_starting_ray(stored, capsys, monkeypatch):
    import nas.search.refine as refine_run

    url, ids = stored
    store = open_store(url)
    recipe = refined_recipe(RECIPE, 4).to_dict()
    chosen = select_candidates(store.trials(search="s1"), top=1)
    for c, acc in zip(chosen, (0.9, 0.5, 0.8)):
        rid = start_refinement(store, c.trial.id, recipe)
        finish_refinement(store, rid, TrialStatus.COMPLETED, accuracy=acc)
    before = refinements(store)

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray started although every refinement was stored")

    monkeypatch.setattr(refine_run, "connect_ray", no_ray)
    assert main(refine(url, "--top", "1", "--epochs", "4", "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["trial"] for t in data["trials"]] == [c.trial.id for c in chosen]
    assert all(t["reused"] for t in data["trials"]) and [t["refined_accuracy"] for t in data["trials"]] == [0.9, 0.5, 0.8]
    expected = kendalltau([c.trial.accuracy for c in chosen], [0.9, 0.5, 0.8]).statistic
    assert data["kendall_tau"] == pytest.approx(expected) and data["epochs"] == 4 and data["proxy_epochs"] == 2
    assert refinements(store) == before
    assert main(refine(url, "--top", "1", "--epochs", "4")) == 0
    out = capsys.readouterr().out
    assert "3 already refined, 0 to train" in out
    assert f"Kendall tau between proxy (2 epochs) and refined (4 epochs) accuracy over 3 trial(s): {expected:.3f}" in out


def _empty_search(path: Path) -> str:
    url, _ = make_store(path, trials=[TRIALS[5], TRIALS[6], TRIALS[7]], name="nothing")
    return url


@pytest.mark.parametrize("args, message", [
    (["--top", "0", "--epochs", "4"], "error: --top must be >= 1"),
    (["--top", "2", "--epochs", "0"], "error: --epochs must be >= 1, got 0"),
    (["--top", "2", "--epochs", "2"], "error: --epochs 2 is not above the search's proxy epochs (2)"),
    (["--top", "2", "--epochs", "4", "--search", "nope"], "error: no search named 'nope' (known: s1)"),
    (["--top", "2", "--epochs", "4", "--address", "127.0.0.1:1"], "error: no Ray cluster reachable at 127.0.0.1:1"),
    (["--top", "2", "--epochs", "4", "--cpus-per-trial", "0"], "error: --cpus-per-trial must be > 0"),
])
def test_bad_input_is_one_line_and_exit_2(stored, capsys, args, message):
    url, _ = stored
    assert main(refine(url, *args)) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_bad_store_or_search_is_one_line_and_exit_2(tmp_path, capsys):
    cases = [
        (refine(str(tmp_path / "missing.db"), "--top", "1", "--epochs", "4"), "does not exist"),
        (refine("postgresql+psycopg://u@h:99999/x", "--top", "1", "--epochs", "4"), "the port must be between"),
        (refine(_empty_search(tmp_path / "empty.db"), "--top", "1", "--epochs", "4"),
         "search 'nothing' has no completed trials to refine"),
        (["refine", "--top", "1"], "the following arguments are required: --epochs"),
    ]
    empty = tmp_path / "blank.db"
    open_store(f"sqlite:///{empty}", create=True).close()
    cases.append((refine(f"sqlite:///{empty}", "--top", "1", "--epochs", "4"), "the store holds no search yet"))
    for argv, message in cases:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
