"""Tabular benchmark: table format and lookups, the evaluator's replayed reports, the search
simulator (budget accounting, concurrency, seeds first, ASHA stops, failed rows), the HV ratio,
and ``benchmarks.search_quality``'s JSON on a 16-architecture synthetic table."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from bench_fixture import EPOCHS, MEASURE_S, epoch_seconds, synthetic_space, synthetic_table
from benchmarks import search_quality
from nas.bench import BenchTable, TabularEvaluator, load_table
from nas.bench.evaluator import RecordedTrialError
from nas.bench.quality import search_quality as quality_of
from nas.bench.simulator import simulate_search
from nas.budget import Budget, parse_budget
from nas.search.settings import DEFAULT_EARLY_STOPPING, EarlyStopping
from nas.store.records import TrialStatus
from nas.strategies import STRATEGY_NAMES
from nas.trial.measure_settings import MeasureSettings
from nas.trial.progress import EPOCH_PHASE, MEASURE_PHASE
from search_spaces import Architecture

POOL, CONV = "pooling", "sepconv"


def arch_of(space, *mixers: str) -> Architecture:
    return next(a for a in space.enumerate() if a.mixers == mixers)


# ---- table -------------------------------------------------------------------------------------


def test_table_round_trips_through_json_and_rows_name_mixers(tmp_path):
    table = synthetic_table()
    data = table.to_dict()
    assert data["format"] == "mixerbench/1" and "arch" not in data["rows"][0]
    assert data["rows"][0]["mixers"] == list(table.entries[0].arch.mixers)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data))
    loaded = load_table(path)
    assert len(loaded) == 16 and loaded.epochs == EPOCHS
    assert loaded.entries == table.entries  # rebuilt architectures equal the space's members
    assert loaded.true_hypervolume() == table.true_hypervolume()


def test_lookup_by_architecture_and_unknown_architecture():
    table = synthetic_table()
    arch = arch_of(table.space, CONV, POOL, POOL, CONV)
    entry = table.entry(arch)
    assert entry.arch == arch and len(entry.val_accuracy) == EPOCHS
    assert entry.accuracy == max(entry.val_accuracy)
    assert entry.cost_s(1) == MEASURE_S + epoch_seconds(arch)
    assert entry.cost_s() == MEASURE_S + EPOCHS * epoch_seconds(arch)
    other = Architecture(("mhsa",) * 4, (1,) * 4, (16,) * 4)
    assert other not in table
    with pytest.raises(KeyError, match="has no row in the synthetic table"):
        table.entry(other)


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d.update(format="other/9"), "format must be 'mixerbench/1'"),
    (lambda d: d["rows"][0].update(arch_hash="0" * 16), "arch_hash"),
    (lambda d: d["rows"][0].update(mixers=["mhsa"] * 4), "not a choice"),
    (lambda d: d["rows"][1].update(mixers=d["rows"][0]["mixers"], arch_hash=d["rows"][0]["arch_hash"]), "two rows"),
    (lambda d: d["rows"][0].update(val_accuracy=[0.5]), "one accuracy and one duration per epoch"),
    (lambda d: d["rows"][0].pop("measure_s"), "missing key 'measure_s'"),
    (lambda d: d["recipe"].pop("epochs"), "recipe.epochs"),
])
def test_malformed_tables_are_one_line_errors(tmp_path, corrupt, message):
    data = synthetic_table().to_dict()
    corrupt(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        load_table(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="cannot read it"):
        load_table(tmp_path / "missing.json")


def test_true_front_reference_point_and_hv_ratio():
    table = synthetic_table()
    front = table.true_front()
    completed = table.completed
    for e in completed:  # no row beats a front member on both objectives
        assert all(not (e.throughput > f.throughput and e.accuracy > f.accuracy) for f in front)
    assert table.reference_point == (min(e.throughput for e in completed), min(e.accuracy for e in completed))
    assert table.hv_ratio(table.points()) == 1.0
    assert table.hv_ratio([(e.throughput, e.accuracy) for e in front]) == 1.0
    middle = len(front) // 2  # (the extremes may add nothing: the reference point is the worst of each objective)
    assert 0.0 < table.hv_ratio([(e.throughput, e.accuracy) for i, e in enumerate(front) if i != middle]) < 1.0
    assert table.hv_ratio([]) == 0.0


# ---- evaluator -----------------------------------------------------------------------------------


def test_evaluator_replays_the_trial_reports_with_their_cost():
    table = synthetic_table()
    arch = arch_of(table.space, CONV, CONV, POOL, POOL)
    entry = table.entry(arch)
    steps = list(TabularEvaluator(table).reports(arch))
    assert [s.result["phase"] for s in steps] == [MEASURE_PHASE] + [EPOCH_PHASE] * EPOCHS
    measure = steps[0].result
    assert steps[0].seconds == MEASURE_S and measure["feasible"] and measure["epoch"] == 0
    assert (measure["throughput"], measure["latency_ms"], measure["params"], measure["gmacs"]) == (
        entry.throughput, entry.latency_ms, entry.params, entry.gmacs)
    assert measure["device_kind"] == "cpu:test x1"
    assert [s.result["val_accuracy"] for s in steps[1:]] == list(entry.val_accuracy)
    assert [s.result["epoch"] for s in steps[1:]] == [1, 2, 3]
    assert sum(s.seconds for s in steps) == entry.cost_s()


def test_evaluator_applies_speed_limits_and_replays_failures():
    space = synthetic_space()
    slow = arch_of(space, CONV, CONV, CONV, CONV)  # latency >= 5 ms
    broken = arch_of(space, POOL, POOL, POOL, CONV)
    table = synthetic_table(space, failed={broken: 1})
    limited = TabularEvaluator(table, MeasureSettings(max_latency_ms=4.0))
    steps = list(limited.reports(slow))
    assert len(steps) == 1 and not steps[0].result["feasible"] and "max_latency_ms" in steps[0].result["violation"]
    failed = list(TabularEvaluator(table).reports(broken))
    assert [s.error is not None for s in failed] == [False, False, True]
    sent = []
    with pytest.raises(RecordedTrialError, match="synthetic failure"):
        TabularEvaluator(table).run_trial({"arch": broken.to_dict()}, lambda m, w: sent.append(m))
    assert [m["phase"] for m in sent] == [MEASURE_PHASE, EPOCH_PHASE]


def test_run_trial_drop_in_stops_when_report_says_so():
    table = synthetic_table()
    arch = table.entries[5].arch
    sent = []
    TabularEvaluator(table).run_trial({"arch": arch.to_dict()}, lambda m, w: sent.append(m) or m["epoch"] < 2)
    assert [m["epoch"] for m in sent] == [0, 1, 2]


# ---- simulator ----------------------------------------------------------------------------------


def test_trials_budget_starts_exactly_that_many_and_charges_what_they_used():
    table = synthetic_table()
    search = simulate_search(TabularEvaluator(table), "random", parse_budget("10trials"), seed=3, workers=3,
                             early_stopping="none")
    assert len(search.trials) == 10 and search.charged == 10
    assert len({t.arch for t in search.trials}) == 10
    for t in search.trials:
        assert t.status is TrialStatus.COMPLETED and t.epochs_done == EPOCHS
        assert t.device_s == MEASURE_S + EPOCHS * epoch_seconds(t.arch)
        assert t.finished_s - t.started_s == t.device_s  # one device per trial: wall = device time
        assert t.accuracy == table.entry(t.arch).accuracy
    assert search.device_s == sum(t.device_s for t in search.trials)
    # never more than 3 at once, and a worker is refilled the moment it frees
    moments = sorted({t.started_s for t in search.trials})
    for m in moments:
        assert sum(t.started_s <= m < t.finished_s for t in search.trials) <= 3
    assert [t.started_s for t in search.trials[:3]] == [0.0, 0.0, 0.0]
    assert search.wall_s == max(t.finished_s for t in search.trials)


def test_device_time_budget_is_charged_in_device_hours_and_overshoots_at_most_the_trials_in_flight():
    table = synthetic_table()
    budget = Budget("cpu", 60.0 / 3600.0, "1cpu-min")
    search = simulate_search(TabularEvaluator(table), "random", budget, seed=0, workers=2, early_stopping="none")
    assert search.charged == pytest.approx(search.device_s / 3600.0)
    mean_cost = search.charged / len(search.trials)
    assert search.charged + mean_cost > budget.amount  # it stopped because another trial would not fit
    longest = max(t.device_s for t in search.trials) / 3600.0
    assert search.charged - budget.amount <= 2 * longest  # overshoot: at most the two trials in flight
    assert 3 <= len(search.trials) < 16


def test_seeds_are_evaluated_first_in_their_order():
    seeds = [[CONV, CONV, CONV, CONV], [POOL, POOL, POOL, POOL], [CONV, POOL, CONV, POOL]]
    table = synthetic_table(synthetic_space(seeds))
    search = simulate_search(TabularEvaluator(table), "evolution", parse_budget("6trials"), seed=0, workers=2)
    assert [t.seed_name for t in search.trials[:3]] == ["seed0", "seed1", "seed2"]
    assert [list(t.arch.mixers) for t in search.trials[:3]] == seeds
    assert all(t.seed_name is None for t in search.trials[3:])


def test_asha_stops_the_trials_below_the_top_third_of_their_rung():
    """One worker, seeds in order, epoch-1 accuracies 0.5, 0.4, 0.3, 0.9: ASHA (grace 1, factor 3) keeps a
    trial whose rung-1 accuracy reaches the 2/3 quantile of those recorded before it (none: keep)."""
    order = [[CONV, POOL, POOL, POOL], [POOL, CONV, POOL, POOL], [POOL, POOL, CONV, POOL], [POOL, POOL, POOL, CONV]]
    space = synthetic_space(order)
    archs = [arch_of(space, *m) for m in order]
    curves = {a: (first, first + 0.05, first + 0.06) for a, first in zip(archs, (0.5, 0.4, 0.3, 0.9))}
    table = synthetic_table(space, curves)
    search = simulate_search(TabularEvaluator(table), "random", parse_budget("4trials"), seed=0, workers=1,
                             early_stopping="asha")
    assert [t.arch for t in search.trials] == archs
    assert [t.status for t in search.trials] == [TrialStatus.COMPLETED, TrialStatus.STOPPED, TrialStatus.STOPPED,
                                                 TrialStatus.COMPLETED]
    assert [t.epochs_done for t in search.trials] == [3, 1, 1, 3]
    assert [t.accuracy for t in search.trials] == [0.56, 0.4, 0.3, 0.96]
    assert [t.device_s for t in search.trials] == [MEASURE_S + n * 2.0 for n in (3, 1, 1, 3)]  # one conv each
    assert search.front_points() == [(table.entry(a).throughput, a_acc) for a, a_acc in
                                     ((archs[0], 0.56), (archs[3], 0.96))]
    assert len(search.front_points(include_stopped=True)) == 4
    fifo = simulate_search(TabularEvaluator(table), "random", parse_budget("4trials"), seed=0, workers=1,
                           early_stopping="none")
    assert [t.epochs_done for t in fifo.trials] == [3, 3, 3, 3]
    assert fifo.device_s - search.device_s == 4 * 2.0


def test_failed_rows_become_failed_trials_charged_for_what_they_ran():
    space = synthetic_space([[POOL, POOL, POOL, CONV]])
    broken = arch_of(space, POOL, POOL, POOL, CONV)
    table = synthetic_table(space, failed={broken: 2})
    search = simulate_search(TabularEvaluator(table), "evolution", parse_budget("16trials"), seed=0, workers=2)
    first = search.trials[0]
    assert first.arch == broken and first.status is TrialStatus.FAILED and first.point is None
    assert first.device_s == MEASURE_S + 2 * 2.0
    assert len(search.trials) == 16 and len({t.arch for t in search.trials}) == 16  # never proposed again


@pytest.mark.parametrize("strategy", ["random", "evolution", "grid"])
def test_a_search_that_sees_the_whole_table_finds_the_whole_front(strategy):
    table = synthetic_table(synthetic_space([[CONV, CONV, POOL, POOL]]))
    evaluator = TabularEvaluator(table)
    search = simulate_search(evaluator, strategy, parse_budget("200trials"), seed=1, workers=4,
                             early_stopping="none")
    assert len(search.trials) == len(table)  # the space ran out before the budget
    assert table.hv_ratio(search.front_points()) == 1.0
    stats = quality_of(evaluator, strategy, parse_budget("200trials"), [0, 1, 2], early_stopping="none")
    assert (stats.hv_ratio_mean, stats.hv_ratio_std, stats.seeds) == (1.0, 0.0, 3)
    partial = quality_of(evaluator, strategy, parse_budget("4trials"), [0, 1, 2], early_stopping="asha")
    assert 0.0 <= partial.hv_ratio_mean < 1.0 and partial.trials_mean == 4


def test_simulated_searches_are_reproducible_per_seed():
    evaluator = TabularEvaluator(synthetic_table())
    runs = [simulate_search(evaluator, "evolution", parse_budget("12trials"), seed=7) for _ in range(2)]
    assert runs[0].trials == runs[1].trials


# ---- benchmark ----------------------------------------------------------------------------------


def test_benchmark_writes_the_json_shape_and_a_png(tmp_path, capsys):
    table_path = tmp_path / "table.json"
    table_path.write_text(json.dumps(synthetic_table().to_dict()))
    out, png = tmp_path / "quality.json", tmp_path / "quality.png"
    code = search_quality.main(["--seeds", "2", "--budgets", "4,8", "--table", str(table_path), "--json", str(out),
                                "--png", str(png)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["table"]["rows"] == 16 and report["table"]["path"] == str(table_path)
    assert len(report["table"]["sha256"]) == 64 and report["table"]["true_front_size"] >= 1
    ran = set(report["results"])
    assert ran | set(report["skipped"]) == set(STRATEGY_NAMES) and {"random", "evolution"} <= ran
    keys = set(search_quality.MODES)  # one result key per early-stopping choice, "results" for the default
    assert len(keys) == len(EarlyStopping) and {"results", "results_no_early_stopping"} <= keys <= set(report)
    assert report["settings"]["early_stopping"]["results"] == DEFAULT_EARLY_STOPPING.value
    for key in keys:
        assert set(report[key]) == ran
        for per_budget in report[key].values():
            assert set(per_budget) == {"4", "8"}
            for stats in per_budget.values():
                assert {"hv_ratio_mean", "hv_ratio_std", "seeds"} <= set(stats) and stats["seeds"] == 2
                assert 0.0 <= stats["hv_ratio_mean"] <= 1.0 and stats["hv_ratio_std"] >= 0.0
    assert Image.open(png).format == "PNG"
    printed = capsys.readouterr().out
    assert "random: 2 seeds x 2 budgets in" in printed and "HV none" in printed


@pytest.mark.parametrize("args, message", [
    (["--table", "/nonexistent/table.json"], "cannot read it"),
    (["--strategies", "bogus"], "unknown strategy 'bogus'"),
    (["--budgets", "10,x"], "--budgets must be comma-separated integers"),
    (["--seeds", "0"], "--seeds and --workers must be >= 1"),
])
def test_benchmark_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    table_path = tmp_path / "table.json"
    table_path.write_text(json.dumps(synthetic_table().to_dict()))
    code = search_quality.main(["--table", str(table_path), "--json", str(tmp_path / "q.json"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "q.json").exists()


def test_benchmark_refuses_an_incomplete_table(tmp_path, capsys):
    data = synthetic_table().to_dict()
    data.update(complete=False, architectures=20)
    table_path = tmp_path / "table.json"
    table_path.write_text(json.dumps(data))
    assert search_quality.main(["--table", str(table_path), "--json", str(tmp_path / "q.json")]) == 2
    assert "incomplete" in capsys.readouterr().err


def test_table_from_dict_accepts_full_arch_rows():
    """Spaces with several depths or widths per stage name each row's architecture in full."""
    table = synthetic_table()
    data = table.to_dict()
    for row, entry in zip(data["rows"], table.entries):
        del row["mixers"]
        row["arch"] = entry.arch.to_dict()
    assert BenchTable.from_dict(data).entries == table.entries



def test_a_row_that_failed_before_its_measurement_replays_as_one_error():
    table = synthetic_table()
    data = table.to_dict()
    data["rows"][0].update(status="failed", error="RuntimeError: boom", val_accuracy=[], epoch_s=[], throughput=None,
                           latency_ms=None, params=None, gmacs=None, measure_s=0.5)
    broken = BenchTable.from_dict(data)
    arch = table.entries[0].arch
    assert [(s.seconds, s.error) for s in TabularEvaluator(broken).reports(arch)] == [(0.5, "RuntimeError: boom")]
    assert broken.entry(arch).cost_s() == 0.5 and broken.entry(arch).accuracy is None


def test_a_table_whose_true_front_has_no_area_cannot_rate_searches():
    table = synthetic_table()
    two = BenchTable(table.space, [table.entries[0], table.entries[-1]], EPOCHS)  # each the worst in one objective
    with pytest.raises(ValueError, match="zero hypervolume"):
        two.hv_ratio(two.points())
