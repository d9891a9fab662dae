"""Early stopping: MO-ASHA's promotion rule on hand-made rungs (against Ray's ASHA on the same results),
the ``--early-stopping`` choice and its stored form (old ``asha: true/false`` searches still resume),
the simulator driving the real scheduler objects, and a real tiny ``nas search --early-stopping mo-asha``."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from bench_fixture import EPOCHS, MEASURE_S, epoch_seconds, synthetic_space, synthetic_table
from benchmarks import search_quality
from nas.bench import TabularEvaluator
from nas.bench.equal_time import (PairedDifference, compare_at_equal_device_time, device_time_budget,
                                  full_trial_seconds)
from nas.bench.simulator import simulate_search
from nas.budget import parse_budget
from nas.cli import main
from nas.objectives import SpeedObjective
from nas.search.mo_asha import (MOASHAScheduler, epsilon_net_order, promotes, promotion_order,
                                rung_milestones)
from nas.search.scheduler import create_scheduler, restore_rungs
from nas.search.settings import DEFAULT_EARLY_STOPPING, EarlyStopping, SearchRequest, SearchSettings
from nas.store import open_store
from nas.store.records import TrialStatus
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
POOL, CONV = "pooling", "sepconv"

# Rung-1 results (accuracy after epoch 1, throughput measured before training), arriving in this order.
# D is 4x faster than the others and 3 points less accurate than the best.
RUNG_1 = [("A", 0.80, 100.0), ("B", 0.78, 120.0), ("C", 0.75, 90.0), ("D", 0.77, 400.0)]


def trial(name: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=name)


def measure_report(throughput: float, latency_ms: float = 1.0) -> dict:
    return {"phase": "measure", "epoch": 0, "val_accuracy": 0.0, "feasible": True, "throughput": throughput,
            "latency_ms": latency_ms}


def epoch_report(epoch: int, accuracy: float) -> dict:
    return {"phase": "epoch", "epoch": epoch, "val_accuracy": accuracy}


def decisions(scheduler: TrialScheduler, results=RUNG_1, latency: bool = False) -> dict[str, str]:
    """Add each trial, send its measurement, then its epoch-1 result; the decision on that result."""
    out = {}
    for name, accuracy, speed in results:
        scheduler.on_trial_add(None, trial(name))
        report = measure_report(1.0, speed) if latency else measure_report(speed)
        assert scheduler.on_trial_result(None, trial(name), report) == CONTINUE
        out[name] = scheduler.on_trial_result(None, trial(name), epoch_report(1, accuracy))
    return out


# ---- the promotion rule ----------------------------------------------------------------------------


def test_a_fast_slightly_less_accurate_trial_is_promoted_by_mo_asha_and_stopped_by_asha():
    mo = create_scheduler("mo-asha", max_epochs=9)
    asha = create_scheduler("asha", max_epochs=9)
    assert isinstance(mo, MOASHAScheduler) and isinstance(asha, ASHAScheduler)
    assert decisions(mo) == {"A": CONTINUE, "B": STOP, "C": STOP, "D": CONTINUE}
    # Ray's ASHA: D's 0.77 is below the 2/3 quantile of 0.80, 0.78, 0.75 (0.787)
    assert decisions(asha) == {"A": CONTINUE, "B": STOP, "C": STOP, "D": STOP}
    assert {n: p for n, p in mo.rung_points(1).items()} == {
        name: (accuracy, math.log10(speed)) for name, accuracy, speed in RUNG_1}


def test_the_order_is_non_dominated_fronts_then_an_epsilon_net_from_the_most_accurate():
    points = [(0.80, 2.0), (0.78, math.log10(120)), (0.75, math.log10(90)), (0.77, math.log10(400))]
    # fronts: {A, B, D} then {C} (dominated by A); in the first front A (most accurate) first, then D,
    # the farthest from A once both objectives are scaled to their range, then B
    assert promotion_order(points) == [0, 3, 1, 2]
    assert epsilon_net_order(points, [1, 3]) == [1, 3]  # B is the more accurate of the two
    # position < n / reduction_factor: with 4 points the first two continue
    assert promotes(points[:3], points[3], 3) and not promotes(points[:3], (0.70, 1.0), 3)
    assert promotes([], (0.0, 0.0), 3)  # the first trial at a rung always continues
    assert not promotes([(0.9, 2.0)], (0.8, 1.0), 3) and promotes([(0.9, 2.0)], (0.95, 1.0), 3)


def test_promotes_is_the_position_in_the_full_promotion_order():
    """``promotes`` stops ordering at the candidate's front; the answer is the full order's."""
    import random

    rng = random.Random(1)
    for _ in range(300):
        points = [(rng.randint(0, 6) / 6, rng.randint(0, 6)) for _ in range(rng.randint(1, 30))]
        for factor in (2, 3, 4):
            expected = promotion_order(points).index(len(points) - 1) < len(points) / factor
            assert promotes(points[:-1], points[-1], factor) == expected


def test_epsilon_net_spreads_along_the_front_instead_of_taking_neighbours():
    # five non-dominated points on a line: after the most accurate (index 0) comes the other end (4),
    # then the middle (2), not the neighbour (1)
    line = [(1.0 - i / 4, i / 4) for i in range(5)]
    assert epsilon_net_order(line, list(range(5)))[:3] == [0, 4, 2]
    # units do not matter: throughput in img/s (log10) vs accuracy in 0..1 give the same order
    assert epsilon_net_order([(a, 1000 * b) for a, b in line], list(range(5)))[:3] == [0, 4, 2]


def test_latency_objective_ranks_by_lower_latency():
    mo = create_scheduler(EarlyStopping.MO_ASHA, max_epochs=9, objective=SpeedObjective.LATENCY)
    # latencies: D is the fastest (2.5 ms against 10, 8.3 and 11.1 ms)
    as_latency = [(n, a, 1000.0 / s) for n, a, s in RUNG_1]
    assert decisions(mo, as_latency, latency=True) == {"A": CONTINUE, "B": STOP, "C": STOP, "D": CONTINUE}
    assert mo.rung_points(1)["D"] == pytest.approx((0.77, -math.log10(2.5)))


def test_rungs_promotion_at_later_rungs_and_completed_trials_inform_later_decisions():
    assert rung_milestones(1, 3, 9) == [1, 3, 9] and rung_milestones(1, 3, 4) == [1, 3]
    mo = MOASHAScheduler(max_t=9, grace_period=1, reduction_factor=3)
    for name, speed in (("fast", 1000.0), ("slow", 10.0)):
        mo.on_trial_add(None, trial(name))
        mo.on_trial_result(None, trial(name), measure_report(speed))
    for epoch in (1, 2):  # the only trial at rung 1, then between rungs: it goes on
        assert mo.on_trial_result(None, trial("fast"), epoch_report(epoch, 0.5)) == CONTINUE
    assert mo.on_trial_result(None, trial("fast"), epoch_report(3, 0.6)) == CONTINUE  # first at rung 3
    assert mo.on_trial_result(None, trial("fast"), epoch_report(9, 0.7)) == STOP  # max_t: trained every epoch
    mo.on_trial_complete(None, trial("fast"), epoch_report(9, 0.7))
    assert set(mo.rung_points(9)) == {"fast"}  # recorded as ASHA does
    # the slow trial is more accurate at rung 1 (continues), but at rung 3 it is dominated by "fast"
    assert mo.on_trial_result(None, trial("slow"), epoch_report(1, 0.55)) == CONTINUE
    assert mo.on_trial_result(None, trial("slow"), epoch_report(3, 0.59)) == STOP


def stored_trial(number: int, accuracies: list[float], throughput: float, reused_from: int | None = None):
    from nas.store.records import EpochRecord, TrialRecord

    return TrialRecord(id=number, search="s", number=number, status=TrialStatus.COMPLETED, arch=None,
                       arch_hash=str(number), recipe=None, recipe_hash="r", throughput=throughput, latency_ms=1.0,
                       epochs_done=len(accuracies), reused_from=reused_from,
                       epochs=tuple(EpochRecord(epoch=e, val_accuracy=a) for e, a in enumerate(accuracies, start=1)))


def test_a_resumed_search_decides_as_if_the_killed_run_had_gone_on():
    """Rungs refilled from the store (accuracy at each rung reached, measured speed) give the decisions the
    live scheduler gives; reused rows are skipped; Ray's ASHA and FIFO are left as they are."""
    live = create_scheduler("mo-asha", max_epochs=9)
    decisions(live, RUNG_1[:3])
    for epoch, accuracy in ((2, 0.82), (3, 0.85)):  # A goes on to rung 3
        live.on_trial_result(None, trial("A"), epoch_report(epoch, accuracy))
    stored = [stored_trial(1, [0.80, 0.82, 0.85], 100.0), stored_trial(2, [0.78], 120.0),
              stored_trial(3, [0.75], 90.0), stored_trial(4, [0.99, 0.99, 0.99], 5000.0, reused_from=1),
              stored_trial(5, [], 7000.0)]
    resumed = create_scheduler("mo-asha", max_epochs=9)
    assert restore_rungs(resumed, stored) == 3
    for milestone in (1, 3, 9):
        assert sorted(resumed.rung_points(milestone).values()) == sorted(live.rung_points(milestone).values())
    assert set(resumed.rung_points(3)) == {"stored:1"}
    _, accuracy, speed = RUNG_1[3]
    for scheduler in (live, resumed):  # D: promoted at rung 1 by both
        assert decisions(scheduler, [("D", accuracy, speed)]) == {"D": CONTINUE}
    weak = [("E", 0.70, 95.0)]  # dominated by A: stopped after a resume, as it would have been without one
    assert decisions(resumed, weak) == decisions(live, weak) == {"E": STOP}
    assert decisions(create_scheduler("mo-asha", 9), weak) == {"E": CONTINUE}  # what forgetting the rungs does
    assert restore_rungs(create_scheduler("asha", 9), stored) == 0
    assert restore_rungs(create_scheduler("none", 9), stored) == 0


def test_a_trial_without_a_measured_speed_ranks_last_on_speed_and_bad_accuracy_last_overall():
    mo = MOASHAScheduler(max_t=3)
    mo.on_trial_add(None, trial("a"))
    mo.on_trial_result(None, trial("a"), measure_report(100.0))
    mo.on_trial_result(None, trial("a"), epoch_report(1, 0.5))
    mo.on_trial_add(None, trial("unmeasured"))  # never sent a measure report
    assert mo.on_trial_result(None, trial("unmeasured"), epoch_report(1, 0.45)) == STOP
    assert mo.rung_points(1)["unmeasured"] == (0.45, -math.inf)
    mo.on_trial_add(None, trial("nan"))
    mo.on_trial_result(None, trial("nan"), measure_report(1e6))
    assert mo.on_trial_result(None, trial("nan"), epoch_report(1, float("nan"))) == STOP


def test_scheduler_choices_and_bad_arguments():
    assert isinstance(create_scheduler("none", 4), FIFOScheduler)
    assert not isinstance(create_scheduler("none", 4), (ASHAScheduler, MOASHAScheduler))
    with pytest.raises(ValueError, match="unknown early stopping 'hyperband'; choices: mo-asha, asha, none"):
        create_scheduler("hyperband", 4)
    with pytest.raises(ValueError, match="reduction_factor > 1"):
        MOASHAScheduler(max_t=4, reduction_factor=1)
    with pytest.raises(ValueError, match="grace_period <= max_t"):
        MOASHAScheduler(max_t=1, grace_period=2)
    mo = create_scheduler("mo-asha", 4)
    assert mo.set_search_properties(None, None) and mo.set_search_properties("val_accuracy", "max")
    assert not mo.set_search_properties("loss", "min")


# ---- settings and the command line -----------------------------------------------------------------


def settings(**changes) -> SearchSettings:
    values = dict(space="mini", strategy="random", seed=0, recipe=ProxyRecipe(epochs=3), measure=MeasureSettings(),
                  early_stopping=EarlyStopping.MO_ASHA)
    return SearchSettings(**{**values, **changes})


def test_stored_settings_round_trip_and_old_searches_read_asha_as_before():
    stored = settings()
    config = stored.to_config()
    assert config["early_stopping"] == "mo-asha" and "asha" not in config
    assert SearchSettings.from_config(config) == stored
    old = {k: v for k, v in config.items() if k != "early_stopping"}
    assert SearchSettings.from_config({**old, "asha": True}).early_stopping is EarlyStopping.ASHA
    assert SearchSettings.from_config({**old, "asha": False}).early_stopping is EarlyStopping.NONE
    with pytest.raises(ValueError, match="incomplete or malformed"):
        SearchSettings.from_config(old)
    with pytest.raises(ValueError, match="unknown early stopping 'sometimes'"):
        SearchSettings.from_config({**old, "early_stopping": "sometimes"})


def test_resume_conflicts_name_the_early_stopping_choice():
    asha = settings(early_stopping=EarlyStopping.ASHA)
    assert asha.conflicts(SearchRequest(early_stopping="asha")) == []
    assert asha.conflicts(SearchRequest(early_stopping=None)) == []
    assert asha.conflicts(SearchRequest(early_stopping="mo-asha")) == [
        "early_stopping (stored 'asha', given 'mo-asha')"]


def parsed(*flags: str) -> SearchRequest:
    from nas.cli import build_parser

    return SearchRequest.from_args(build_parser().parse_args(["search", *flags]))


def test_flags_and_their_aliases():
    assert DEFAULT_EARLY_STOPPING is EarlyStopping.MO_ASHA
    assert parsed().early_stopping is None  # the default is decided when the search is prepared
    assert parsed("--early-stopping", "none").early_stopping == "none"
    assert parsed("--asha").early_stopping == "asha" and parsed("--no-asha").early_stopping == "none"


def test_unknown_early_stopping_is_one_line_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "--space", "hybrid_metaformer_tiny", "--budget", "2trials", "--early-stopping", "sometimes",
              "--db", str(tmp_path / "nas.db")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "invalid choice: 'sometimes'" in lines[0] and "mo-asha" in lines[0]
    assert not (tmp_path / "nas.db").exists()


def test_resuming_an_old_asha_search_with_another_choice_is_refused(capsys, tmp_path):
    from search_spaces import get_space

    db = tmp_path / "nas.db"
    store = open_store(f"sqlite:///{db}", create=True)
    space = get_space("hybrid_metaformer_tiny")
    config = {**settings(space="hybrid_metaformer_tiny").to_config(), "gpus_per_trial": 0.0, "cpus_per_trial": 1.0,
              "max_concurrent": None, "data_dir": None}
    del config["early_stopping"]
    config["asha"] = True  # written before --early-stopping existed
    store.create_search("old", space="hybrid_metaformer_tiny", space_description=space.describe(), config=config,
                        budget_kind="trials", budget_total=2, budget_text="2trials")
    store.close()
    code = main(["search", "--resume", "old", "--early-stopping", "mo-asha", "--db", str(db)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "early_stopping (stored 'asha', given 'mo-asha')" in err


# ---- the simulator drives the real scheduler objects ---------------------------------------------


def arch_of(space, *mixers: str):
    return next(a for a in space.enumerate() if a.mixers == mixers)


def test_simulated_search_mo_asha_finishes_the_fast_trial_that_asha_stops():
    """One worker, seeds in order: A (4 convs, 390 img/s), B (354 img/s), C (407 img/s), D (all pooling,
    1766 img/s); epoch-1 accuracies 0.80, 0.78, 0.75, 0.77 as in the hand-made rung above."""
    order = [(CONV,) * 4, (CONV, CONV, CONV, POOL), (CONV, POOL, CONV, CONV), (POOL,) * 4]
    space = synthetic_space([list(m) for m in order])
    archs = [arch_of(space, *m) for m in order]
    curves = {a: (first, first + 0.05, first + 0.06) for a, first in zip(archs, (0.80, 0.78, 0.75, 0.77))}
    table = synthetic_table(space, curves)
    speeds = [table.entry(a).throughput for a in archs]
    assert speeds[3] > 4 * max(speeds[:3])
    evaluator = TabularEvaluator(table)
    runs = {es: simulate_search(evaluator, "random", parse_budget("4trials"), seed=0, workers=1, early_stopping=es)
            for es in ("mo-asha", "asha", "none")}
    for run in runs.values():
        assert [t.arch for t in run.trials] == archs
    statuses = {es: [t.status for t in run.trials] for es, run in runs.items()}
    C_, S_ = TrialStatus.COMPLETED, TrialStatus.STOPPED
    assert statuses == {"mo-asha": [C_, S_, S_, C_], "asha": [C_, S_, S_, S_], "none": [C_] * 4}
    assert runs["mo-asha"].early_stopping is EarlyStopping.MO_ASHA
    # the fast trial is on mo-asha's front at its final accuracy; asha's front lost it
    assert [thr for thr, _ in runs["mo-asha"].front_points()] == [speeds[0], speeds[3]]
    assert [thr for thr, _ in runs["asha"].front_points()] == [speeds[0]]
    assert table.hv_ratio(runs["mo-asha"].front_points()) > table.hv_ratio(runs["asha"].front_points())
    assert runs["mo-asha"].device_s < runs["none"].device_s


# ---- a real search on local Ray ---------------------------------------------------------------------


def write_tiny_space(path: Path) -> str:
    mhsa = {"mhsa": {"head_dim": 16}}
    space = {
        "name": "tiny-es", "target_res": 32, "proxy_res": 32,
        "stages": [{"mixer": ["sepconv", "pooling"], "depth": [1], "width": [16]},
                   {"mixer": ["sepconv", "pooling"], "depth": [1], "width": [16]},
                   {"mixer": ["pooling", "mhsa"], "depth": [1], "width": [32], "mixer_kwargs": mhsa},
                   {"mixer": ["pooling", "mhsa"], "depth": [1], "width": [32, 16], "mixer_kwargs": mhsa}],
        # evaluated first, in this order: the all-pooling models learn far less in one epoch than "convs"
        # (0.12 against 0.26 here), so at rung 1 they are stopped whatever their speed: the second trial there
        # must be the more accurate of two, the third the most accurate of three
        "seeds": [{"name": "convs", "mixers": ["sepconv", "sepconv", "pooling", "pooling"], "depths": [1] * 4,
                   "dims": [16, 16, 32, 32]},
                  {"name": "all-pooling", "mixers": ["pooling"] * 4, "depths": [1] * 4, "dims": [16, 16, 32, 32]},
                  {"name": "all-pooling-narrow", "mixers": ["pooling"] * 4, "depths": [1] * 4,
                   "dims": [16, 16, 32, 16]}],
    }
    path.write_text(json.dumps(space))
    return str(path)


@pytest.mark.ray
def test_real_search_with_mo_asha_stops_exactly_the_trials_the_rule_says_also_after_a_resume(
        ray_local, tmp_path, capsys):
    """Trials one at a time, so they reach rung 1 in trial order; each trial's stored epoch-1 accuracy and
    measured throughput, put through the rule, must give the stored status (a completed trial trained all 3
    epochs, a stopped one only the first).  The search runs 2 trials, then is resumed to 4: the third trial
    is judged against the first two (rungs restored from the store), not as the first of an empty rung."""
    db = tmp_path / "nas.db"
    common = ["--db", str(db), "--max-concurrent", "1", "--quiet"]
    code = main(["search", "--space", write_tiny_space(tmp_path / "space.json"), "--budget", "2trials",
                 "--epochs", "3", "--subset", "120", "--dataset", "digits", "--strategy", "random",
                 "--early-stopping", "mo-asha", "--warmup", "1", "--repeats", "3", "--throughput-batch", "8",
                 "--name", "mo", *common])
    assert code == 0, capsys.readouterr().err
    assert main(["search", "--resume", "mo", "--budget", "4trials", *common]) == 0, capsys.readouterr().err
    store = open_store(f"sqlite:///{db}")
    try:
        assert store.get_search("mo").config["early_stopping"] == "mo-asha"
        trials = sorted((store.trial(t.id) for t in store.trials(search="mo")), key=lambda t: t.number)
    finally:
        store.close()
    assert [t.seed_name for t in trials[:3]] == ["convs", "all-pooling", "all-pooling-narrow"] and len(trials) == 4
    assert [(t.status, t.epochs_done) for t in trials[1:3]] == [(TrialStatus.STOPPED, 1)] * 2
    recorded = []
    for t in trials:
        assert t.status in (TrialStatus.COMPLETED, TrialStatus.STOPPED), (t.status, t.error)
        point = (t.epochs[0].val_accuracy, math.log10(t.throughput))
        expected = TrialStatus.COMPLETED if promotes(recorded, point, 3) else TrialStatus.STOPPED
        assert t.status == expected and t.epochs_done == (3 if expected == TrialStatus.COMPLETED else 1)
        recorded.append(point)


# ---- equal device time -------------------------------------------------------------------------------


def test_equal_device_time_budget_is_n_full_trials_and_differences_are_per_seed():
    table = synthetic_table()
    full = statistics.fmean(MEASURE_S + EPOCHS * epoch_seconds(e.arch) for e in table.entries)
    assert full_trial_seconds(table) == pytest.approx(full)
    budget = device_time_budget(table, 5)
    assert (budget.kind, budget.amount) == ("cpu", pytest.approx(5 * full / 3600))
    evaluator = TabularEvaluator(table)
    result = compare_at_equal_device_time(evaluator, "random", 5, [0, 1, 2], workers=2)
    assert set(result.stats) == set(EarlyStopping) and result.budget == budget
    longest = max(e.cost_s() for e in table.entries) / 3600
    for choice, stats in result.stats.items():  # every choice spent the same device time, up to what was in flight
        assert budget.amount - 2 * longest <= stats.device_h_mean <= budget.amount + 2 * longest, choice
    assert result.stats[EarlyStopping.NONE].stopped_mean == 0
    ratios = {c: [table.hv_ratio(simulate_search(evaluator, "random", budget, seed=s, workers=2,
                                                 early_stopping=c).front_points()) for s in (0, 1, 2)]
              for c in EarlyStopping}
    diff = result.differences[(EarlyStopping.MO_ASHA, EarlyStopping.NONE)]
    assert diff.mean == pytest.approx(statistics.fmean(a - b for a, b in zip(ratios[EarlyStopping.MO_ASHA],
                                                                             ratios[EarlyStopping.NONE])))
    assert set(result.to_json()) == {"device_h", "mo-asha", "asha", "none", "differences"}
    assert set(result.to_json()["differences"]) == {"mo-asha - none", "mo-asha - asha"}


def test_paired_difference():
    d = PairedDifference.of([0.5, 0.7, 0.6], [0.4, 0.7, 0.8])
    assert d.mean == pytest.approx(-0.1 / 3) and (d.better, d.worse) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert d.stderr == pytest.approx(statistics.stdev([0.1, 0.0, -0.2]) / math.sqrt(3))
    with pytest.raises(ValueError):
        PairedDifference.of([0.5], [0.4, 0.3])


def test_search_quality_reports_the_equal_device_time_comparison(tmp_path, capsys):
    table_path = tmp_path / "table.json"
    table_path.write_text(json.dumps(synthetic_table().to_dict()))
    out = tmp_path / "quality.json"
    assert search_quality.main(["--seeds", "2", "--budgets", "4,6", "--strategies", "random,evolution",
                                "--equal-time-strategies", "evolution", "--table", str(table_path),
                                "--json", str(out), "--png", str(tmp_path / "q.png")]) == 0
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"random", "evolution"}
    assert report["results"]["random"]["4"]["seeds"] == 2  # the default: mo-asha
    assert set(report["results_asha"]) == set(report["results_no_early_stopping"]) == {"random", "evolution"}
    equal = report["equal_device_time"]
    assert set(equal["results"]) == {"evolution"} and set(equal["results"]["evolution"]) == {"4", "6"}
    assert equal["full_trial_device_s"] == pytest.approx(full_trial_seconds(synthetic_table()), abs=1e-4)
    assert equal["best_strategy"] in {"random", "evolution"}
    assert "equal device time" in capsys.readouterr().out
    code = search_quality.main(["--table", str(table_path), "--json", str(tmp_path / "bad.json"), "--strategies",
                                "random", "--equal-time-strategies", "evolution"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'evolution' is not among the strategies run" in err


def test_two_objective_fronts_equal_the_general_non_dominated_sort():
    """The O(n log n) path MO-ASHA relies on gives exactly the general O(n^2) sort's fronts, ties included."""
    import random

    from nas.strategies import pareto_rank

    rng = random.Random(0)
    for trial_number in range(300):
        n = rng.randint(0, 40)
        grid = rng.choice([3, 10, 1000])  # coarse grids make many ties and duplicates
        points = [(rng.randint(0, grid) / grid, rng.randint(0, grid) / grid) for _ in range(n)]
        fast = pareto_rank.non_dominated_fronts(points)
        assert fast == pareto_rank._fronts_2d(points)
        # the general path: three objectives with a constant third one give the same fronts
        assert fast == pareto_rank.non_dominated_fronts([(a, b, 0.0) for a, b in points]), trial_number
    assert pareto_rank.non_dominated_fronts([(1.0, -math.inf), (0.5, 2.0), (0.5, 2.0), (0.4, 1.0)]) == [[0, 1, 2], [3]]
