"""MixerBench: the space, the grid strategy, the table export from a store, and a real (tiny) build."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.mixerbench.__main__ import main as mixerbench_main
from benchmarks.mixerbench.runs import RUNS_FILE, append_run
from benchmarks.mixerbench.table import build_table, write_table
from nas.bench.table import TABLE_FORMAT, load_table, row_architecture
from nas.errors import UsageError
from nas.objectives import Outcome
from nas.search.recorder import INTERRUPTED_ERROR
from nas.store import Measurement, TrialStatus, open_store
from nas.strategies import create_strategy
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe
from search_spaces import SearchSpace, get_space

ROW_KEYS = {"mixers", "arch_hash", "status", "val_accuracy", "accuracy", "throughput", "throughput_iqr", "latency_ms",
            "latency_iqr_ms", "params", "gmacs", "measure_s", "epoch_s"}
HEADER_KEYS = {"format", "space", "architectures", "complete", "recipe", "measure", "protocol", "device_kind", "torch",
               "code_revision", "build_date", "build", "rows"}


# ---- the space ---------------------------------------------------------------------------------


def test_space_has_every_mixer_combination_at_the_tiny_seeds_depths_and_widths():
    space, tiny = get_space("mixerbench"), get_space("hybrid_metaformer_tiny")
    members = list(space.enumerate())
    assert len(members) == len(set(members)) == space.size() == 7 * 7 * 6 * 6
    assert {a.depths for a in members} == {(1, 1, 2, 1)} and {a.dims for a in members} == {(16, 32, 64, 64)}
    assert [list(s.mixers) for s in space.stages] == [list(s.mixers) for s in tiny.stages]
    assert [dict(s.mixer_kwargs) for s in space.stages] == [dict(s.mixer_kwargs) for s in tiny.stages]
    # every mixerbench member is a member of the tiny space, and so are exactly the tiny seeds that fit
    assert all(tiny.is_valid(a) for a in members[::97])
    inside = [name for name, arch in tiny.seeds() if arch.depths == (1, 1, 2, 1) and arch.dims == (16, 32, 64, 64)]
    assert [name for name, _ in space.seeds()] == inside == \
        ["CAFormer-like", "CDFFormer-like", "LITv2-like", "all-DF", "all-DynaMixer"]


# ---- grid strategy -----------------------------------------------------------------------------


def small_space() -> SearchSpace:
    fixed = {"mixer": ["pooling"], "depth": [1], "width": [32]}
    return SearchSpace.from_dict({"name": "six", "target_res": 32, "stages": [
        {"mixer": ["sepconv", "pooling", "mhsa"], "depth": [1], "width": [32],
         "mixer_kwargs": {"mhsa": {"head_dim": 16}}},
        {"mixer": ["pooling"], "depth": [1, 2], "width": [32]}, fixed, fixed]})


def test_grid_proposes_every_architecture_once_in_enumeration_order_then_none():
    space = small_space()
    strategy = create_strategy("grid", space, seed=5)
    in_flight = [strategy.ask(), strategy.ask()]  # unanswered proposals are not proposed again
    strategy.tell(in_flight[0], Outcome.trained(0.5))
    strategy.tell(in_flight[1], None)
    rest = []
    while (arch := strategy.ask()) is not None:
        rest.append(arch)
        strategy.tell(arch, Outcome.trained(1.0))
    assert in_flight + rest == list(space.enumerate())
    assert len(rest) == 4 and strategy.ask() is None


def test_grid_skips_architectures_seen_before_their_turn_and_ignores_its_seed():
    space = small_space()
    order = list(space.enumerate())
    strategy = create_strategy("grid", space, seed=0)
    strategy.mark_seen(order[0])
    strategy.tell(order[3], Outcome.trained(0.9))  # e.g. a seed evaluated first
    proposed = [strategy.ask() for _ in range(4)]
    assert proposed == [order[1], order[2], order[4], order[5]]
    assert strategy.ask() is None
    other_seed = create_strategy("grid", space, seed=123)
    assert [other_seed.ask() for _ in range(6)] == order


# ---- export of a store -------------------------------------------------------------------------


def _search(store, name: str, recipe: ProxyRecipe, space: SearchSpace):
    config = {"space": "mixerbench", "strategy": "grid", "seed": 0, "recipe": recipe.to_dict(),
              "measure": MeasureSettings(target_res=32).to_dict(), "asha": False, "gpus_per_trial": 0.0,
              "cpus_per_trial": 1.0, "max_concurrent": 2, "data_dir": None}
    return store.create_search(name, space="mixerbench", space_description=space.describe(), config=config,
                               budget_kind="trials", budget_total=10, budget_text="10trials",
                               device_kind="cpu:test x1")


def _trained_trial(store, search_id: int, arch, recipe: ProxyRecipe, accuracies, elapsed) -> int:
    trial = store.start_trial(search_id, arch=arch.to_dict(), recipe=recipe.to_dict(), devices_held=1.0)
    store.record_measurement(trial, Measurement(
        params=1234, gmacs=0.00123456, latency_ms=1.23456, throughput=5432.1, latency_iqr_ms=0.01, throughput_iqr=12.5,
        protocol={"img_size": 32, "latency_batch": 1, "throughput_batch": 32, "torch": "9.9", "device": "cpu:test x1"},
        device_kind="cpu:test x1"), device_hours=0.0001)
    for epoch, (acc, seconds) in enumerate(zip(accuracies, elapsed), start=1):
        store.record_epoch(trial, epoch, {"val_accuracy": acc, "elapsed_s": seconds},
                           best_accuracy=max(accuracies[:epoch]))
    return trial


def test_export_of_a_tiny_store_has_the_documented_shape(tmp_path):
    space = get_space("mixerbench")
    cafe, df, dyna = (row_architecture(space, m) for m in (["sepconv", "sepconv", "mhsa", "mhsa"],
                                                           ["dynamic_filter"] * 4, ["dynamixer"] * 4))
    recipe = ProxyRecipe(dataset="digits", epochs=2)
    store = open_store(f"sqlite:///{tmp_path}/bench.db", create=True)
    earlier = _search(store, "earlier", recipe, space)
    source = _trained_trial(store, earlier.id, df, recipe, [0.5, 0.75], [2.0, 3.5])
    store.finish_trial(source, TrialStatus.COMPLETED, device_hours=5.0 / 3600, accuracy=0.75)

    build = _search(store, "mixerbench", recipe, space)
    done = _trained_trial(store, build.id, cafe, recipe, [0.6, 0.55], [1.0, 2.25])
    store.finish_trial(done, TrialStatus.COMPLETED, device_hours=4.0 / 3600, accuracy=0.6)
    store.record_reuse(build.id, source)
    broken = store.start_trial(build.id, arch=dyna.to_dict(), recipe=recipe.to_dict(), devices_held=1.0)
    store.finish_trial(broken, TrialStatus.FAILED, device_hours=0.5 / 3600, error="RuntimeError: boom")
    store.start_trial(build.id, arch=dyna.to_dict(), recipe=recipe.to_dict(), devices_held=1.0)  # still running
    stopped = store.start_trial(build.id, arch=row_architecture(space, ["mhsa"] * 4).to_dict(), recipe=recipe.to_dict())
    store.finish_trial(stopped, TrialStatus.FAILED, error=INTERRUPTED_ERROR)  # the build was stopped: no row
    append_run(tmp_path / "artifacts" / "mixerbench", {"revision": "abc123", "wall_s": 12.5, "started": "now"})

    table = build_table(store, "mixerbench", tmp_path / "artifacts")
    store.close()
    assert set(table) == HEADER_KEYS
    assert table["format"] == TABLE_FORMAT and table["architectures"] == 1764 and table["complete"] is False
    assert table["recipe"] == recipe.to_dict() and table["measure"]["target_res"] == 32
    assert (table["device_kind"], table["torch"], table["code_revision"]) == ("cpu:test x1", "9.9", "abc123")
    assert table["build"]["wall_s"] == 12.5 and (table["build"]["trained"], table["build"]["reused"]) == (2, 1)
    assert len(table["build_date"]) == 10
    rows = table["rows"]
    # grid order: stage 1's mixer slowest (sepconv < dynamic_filter < dynamixer in the space's lists)
    assert [r["mixers"] for r in rows] == [list(cafe.mixers), list(df.mixers), list(dyna.mixers)]
    assert all(set(r) == ROW_KEYS for r in rows[:2]) and set(rows[2]) == ROW_KEYS | {"error"}
    first, reused, failed = rows
    assert first["arch_hash"] == cafe.hash and row_architecture(space, first["mixers"]) == cafe
    assert first["val_accuracy"] == [0.6, 0.55] and first["accuracy"] == 0.6  # best epoch, not the last
    assert first["epoch_s"] == [1.0, 1.25] and first["measure_s"] == 1.75  # 4.0 device-s in all
    assert (first["throughput"], first["latency_ms"], first["gmacs"], first["params"]) == \
        (5432.0, 1.235, 0.001235, 1234)  # rounded to 4 significant digits
    assert reused["val_accuracy"] == [0.5, 0.75] and reused["epoch_s"] == [2.0, 1.5] and reused["measure_s"] == 1.5
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom" and failed["val_accuracy"] == []

    path = write_table(table, tmp_path / "out" / "mixerbench.json")
    assert json.loads(path.read_text()) == table
    assert len(path.read_text().splitlines()) == len(HEADER_KEYS) - 1 + len(rows) + 4  # one line per field and row
    loaded = load_table(path)  # what the tabular evaluator reads
    assert [e.arch for e in loaded] == [cafe, df, dyna] and loaded.epochs == 2
    assert loaded.entry(df).cost_s() == 5.0 and loaded.entry(cafe).accuracy == 0.6 and not loaded.entry(dyna).completed


def test_export_refuses_a_build_measured_on_two_device_kinds(tmp_path):
    space, recipe = get_space("mixerbench"), ProxyRecipe(epochs=1)
    store = open_store(f"sqlite:///{tmp_path}/bench.db", create=True)
    build = _search(store, "mixerbench", recipe, space)
    for kind, mixers in (("cpu:A x1", ["mhsa"] * 4), ("cpu:B x1", ["dma"] * 4)):
        trial = _trained_trial(store, build.id, row_architecture(space, mixers), recipe, [0.5], [1.0])
        store.record_measurement(trial, Measurement(params=1, gmacs=1.0, latency_ms=1.0, throughput=1.0,
                                                    device_kind=kind))
        store.finish_trial(trial, TrialStatus.COMPLETED, accuracy=0.5)
    with pytest.raises(UsageError, match=r"measured on 2 device kinds \(cpu:A x1, cpu:B x1\)"):
        build_table(store, "mixerbench")
    store.close()


# ---- command line ------------------------------------------------------------------------------


def test_bad_requests_exit_2_with_one_line(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/bench.db"
    store = open_store(db, create=True)
    _search(store, "mixerbench", ProxyRecipe(), get_space("mixerbench"))
    store.close()
    cases = [(["build", "--db", db, "--limit", "0"], "--limit must be >= 1"),
             (["build", "--db", db, "--limit", "1"], "already exists"),
             (["build", "--db", db, "--name", "other", "--resume"], "no MixerBench build 'other'"),
             (["export", "--db", db, "--name", "other"], "no MixerBench build 'other'"),
             (["export", "--db", f"sqlite:///{tmp_path}/missing.db"], "does not exist")]
    for argv, message in cases:
        assert mixerbench_main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (argv, err)


@pytest.mark.ray
def test_real_build_of_a_tiny_slice_resumes_and_exports(ray_local, tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/bench.db"
    tiny = ["--dataset", "digits", "--epochs", "1", "--subset", "64", "--quiet"]
    assert mixerbench_main(["build", "--db", db, "--limit", "2", *tiny]) == 0
    assert mixerbench_main(["build", "--db", db, "--limit", "3", "--resume", "--quiet"]) == 0
    out = tmp_path / "mixerbench.json"
    assert mixerbench_main(["export", "--db", db, "--out", str(out)]) == 0
    assert "3 rows, 3 completed, of 1764 architectures (incomplete)" in capsys.readouterr().out

    table = json.loads(out.read_text())
    space = get_space("mixerbench")
    seeds = [arch for _, arch in space.seeds()]  # evaluated first: 2 by the first run, the next by the resumed one
    grid_order = list(space.enumerate())
    assert [row_architecture(space, r["mixers"]) for r in table["rows"]] == sorted(seeds[:3], key=grid_order.index)
    assert table["recipe"]["subset"] == 64 and table["recipe"]["epochs"] == 1 and table["measure"]["target_res"] == 32
    assert table["measure"]["clock"] == "thread" and table["protocol"]["timer"] == "thread_time"  # the build's default
    assert table["device_kind"].startswith("cpu:") and table["torch"] and table["code_revision"]
    assert [r["exit_code"] for r in table["build"]["runs"]] == [0, 0]
    assert [r["trained"] for r in table["build"]["runs"]] == [2, 3]  # the resumed run re-trained nothing
    for row in table["rows"]:
        assert row["status"] == "completed" and len(row["val_accuracy"]) == len(row["epoch_s"]) == 1
        assert 0 <= row["accuracy"] <= 1 and row["throughput"] > 0 and row["params"] > 0 and row["gmacs"] > 0
        assert row["measure_s"] > 0 and min(row["epoch_s"]) > 0
    assert json.loads((tmp_path / "bench_artifacts" / "mixerbench" / RUNS_FILE).read_text())[1]["command"].startswith(
        "nas search --resume mixerbench --budget 3trials")
