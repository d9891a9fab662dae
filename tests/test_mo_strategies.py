"""Multi-objective strategies (mo-evolution, nsga2, motpe) and the objectives they are told.

Ask/tell without repeats, constraint-domination (infeasible trials never learned from as good),
Optuna's study as the strategies fill it, resume replay giving the same next proposals as an
uninterrupted run, quality against random search on a synthetic two-objective problem, and the
``Outcome`` / ``TrialProgress`` / search-settings plumbing.
"""
from __future__ import annotations

import math
import random
import statistics
from collections import Counter

import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas.front import hypervolume_2d
from nas.objectives import Outcome, SpeedLimits, SpeedObjective, parse_objective
from nas.search.settings import EarlyStopping, SearchRequest, SearchSettings
from nas.store.records import TrialRecord, TrialStatus
from nas.strategies import MULTI_OBJECTIVE, create_strategy
from nas.strategies.mo_evolution import MultiObjectiveEvolution
from nas.trial.measure_settings import MeasureSettings
from nas.trial.progress import TrialProgress
from nas.trial.recipe import ProxyRecipe
from search_spaces import Architecture, SearchSpace, get_space

SMALL = {"mo-evolution": {"population_size": 6, "sample_size": 3}, "nsga2": {"population_size": 6},
         "motpe": {"n_startup_trials": 5}}


def two_objective_space() -> SearchSpace:
    stage = {"mixer": ["sepconv", "pooling", "mhsa"], "depth": [1, 2, 3], "width": [16, 32, 48],
             "mixer_kwargs": {"mhsa": {"head_dim": 16}}}
    return SearchSpace.from_dict({"name": "mo", "target_res": 32, "stages": [stage] * 4})


def synthetic_outcome(arch: Architecture, seed: int = 0) -> Outcome:
    """Slower choices are more accurate (a trade-off), with per-architecture noise and a fixed random bonus."""
    rng = random.Random(f"{arch.hash}/{seed}")
    bonus = random.Random(seed)
    cost = {m: bonus.uniform(0.5, 2.0) for m in ("sepconv", "pooling", "mhsa")}
    gain = {m: bonus.uniform(0.0, 0.1) for m in ("sepconv", "pooling", "mhsa")}
    latency = sum(cost[m] * d * w / 16 for m, d, w in zip(arch.mixers, arch.depths, arch.dims))
    accuracy = 0.3 + 0.1 * math.log(latency) + sum(gain[m] for m in arch.mixers) + 0.02 * rng.random()
    return Outcome.trained(accuracy, throughput=1000.0 / latency, latency_ms=latency)


def run(strategy, outcome_of, asks: int) -> list[Architecture]:
    proposed = []
    for _ in range(asks):
        arch = strategy.ask()
        if arch is None:
            break
        proposed.append(arch)
        strategy.tell(arch, outcome_of(arch))
    return proposed


# ---- contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MULTI_OBJECTIVE)
def test_no_repeats_and_only_valid_architectures_on_the_tiny_space(name):
    tiny = get_space("hybrid_metaformer_tiny")  # nondecreasing widths: many raw combinations are invalid
    strategy = create_strategy(name, tiny, seed=1, **SMALL[name])
    proposed = run(strategy, synthetic_outcome_tiny, asks=60)
    assert len(proposed) == 60 and max(Counter(proposed).values()) == 1
    assert all(tiny.is_valid(a) for a in proposed)


def synthetic_outcome_tiny(arch: Architecture) -> Outcome:
    latency = sum(d * w for d, w in zip(arch.depths, arch.dims)) / 50
    return Outcome.trained(0.5 + 0.1 * math.log(latency) + 0.1 * random.Random(arch.hash).random(),
                           throughput=1000 / latency, latency_ms=latency)


@pytest.mark.parametrize("name", MULTI_OBJECTIVE)
def test_exhausting_a_small_space_with_proposals_in_flight_and_marked_ones(name):
    fixed = {"mixer": ["pooling"], "depth": [1], "width": [32]}
    space = SearchSpace.from_dict({"name": "six", "target_res": 32, "stages": [
        {"mixer": ["sepconv", "pooling", "mhsa"], "depth": [1], "width": [32],
         "mixer_kwargs": {"mhsa": {"head_dim": 16}}},
        {"mixer": ["pooling"], "depth": [1, 2], "width": [32]}, fixed, fixed]})
    everything = list(space.enumerate())
    strategy = create_strategy(name, space, seed=0, **SMALL[name])
    strategy.mark_seen(everything[0])
    in_flight = [strategy.ask(), strategy.ask()]
    strategy.tell(in_flight[0], None)  # failed
    proposed = in_flight + run(strategy, synthetic_outcome, asks=10)
    assert sorted(a.hash for a in proposed) == sorted(a.hash for a in everything[1:])
    assert strategy.ask() is None


def test_options_are_checked():
    space = two_objective_space()
    with pytest.raises(ValueError, match="strategy 'nsga2': population_size must be an int >= 2, got 1"):
        create_strategy("nsga2", space, population_size=1)
    with pytest.raises(ValueError, match="strategy 'motpe': n_startup_trials must be an int >= 1, got 0"):
        create_strategy("motpe", space, n_startup_trials=0)
    with pytest.raises(ValueError, match=r"strategy 'mo-evolution': sample_size \(9\) must not exceed population_size"):
        create_strategy("mo-evolution", space, population_size=4, sample_size=9)
    with pytest.raises(ValueError, match=r"strategy 'motpe': unknown option\(s\) \['pop'\]; accepted: "
                                         r"\['n_startup_trials', 'multivariate', 'max_retries'\]"):
        create_strategy("motpe", space, pop=3)
    with pytest.raises(ValueError, match="unknown objective 'speed'; choices: throughput, latency"):
        create_strategy("motpe", space, speed="speed")


@pytest.mark.parametrize("name", ["nni-tpe", "nni-evolution"])
def test_nni_strategies_refuse_speed_limits_in_one_line(name):
    with pytest.raises(ValueError, match=rf"^strategy '{name}' cannot take speed limits \(--max-latency-ms/"
                                         r"--min-throughput\): NNI's tuners forget failed trials"):
        create_strategy(name, two_objective_space(), limits=SpeedLimits(max_latency_ms=5.0))


# ---- constraint-domination ----------------------------------------------------------------------


def test_mo_evolution_never_breeds_from_an_infeasible_member_while_a_feasible_one_competes():
    space = two_objective_space()
    limits = SpeedLimits(max_latency_ms=10.0)
    evolution = MultiObjectiveEvolution(space, seed=0, population_size=4, sample_size=4, limits=limits)
    archs = [space.sample(random.Random(i)) for i in range(4)]
    evolution.tell(archs[0], Outcome.infeasible(throughput=1e6, latency_ms=10.5))  # just over, very fast
    evolution.tell(archs[1], None)  # failed: never joins
    evolution.tell(archs[2], Outcome.trained(0.01, throughput=1.0, latency_ms=9.0))  # the worst feasible
    evolution.tell(archs[3], Outcome.infeasible(throughput=5.0, latency_ms=20.0))
    assert [a for a, _ in evolution.population] == [archs[0], archs[2], archs[3]]
    key = evolution._tournament_key([0, 1, 2])
    assert sorted(range(3), key=key) == [1, 0, 2]  # feasible, then the infeasible one closer to the limit
    assert all(evolution._tournament_winner() == archs[2] for _ in range(20))


@pytest.mark.parametrize("name", ["nsga2", "motpe"])
def test_optuna_studies_rank_infeasible_trials_behind_every_feasible_one(name):
    space = two_objective_space()
    strategy = create_strategy(name, space, seed=0, limits=SpeedLimits(min_throughput=100.0), predict_speed=False,
                               **SMALL[name])
    good, bad, poor = strategy.ask(), strategy.ask(), strategy.ask()
    strategy.tell(good, Outcome.trained(0.5, throughput=200.0, latency_ms=5.0))
    strategy.tell(bad, Outcome.infeasible(throughput=50.0, latency_ms=1.0))  # fastest latency, over the limit
    strategy.tell(poor, Outcome.trained(0.1, throughput=150.0, latency_ms=7.0))
    trials = {t.params["stage1.mixer"] + str(t.number): t for t in strategy.study.trials}
    by_number = sorted(strategy.study.trials, key=lambda t: t.number)
    assert [t.state for t in by_number] == [TrialState.COMPLETE] * 3 and len(trials) == 3
    assert [t.constraints for t in by_number] == [{"speed_limits": 0.0}, {"speed_limits": pytest.approx(math.log10(2))},
                                                  {"speed_limits": 0.0}]
    assert by_number[1].values == [0.0, pytest.approx(math.log10(50.0))]
    assert {t.number for t in strategy.study.best_trials} == {0}  # the feasible front: the infeasible one is out


# ---- Optuna studies as the strategies fill them -------------------------------------------------


@pytest.mark.parametrize("name", ["nsga2", "motpe"])
def test_optuna_study_holds_categorical_choices_and_what_each_trial_told(name):
    space = two_objective_space()
    strategy = create_strategy(name, space, seed=0, speed=SpeedObjective.LATENCY, **SMALL[name])
    assert strategy.distributions == {label: CategoricalDistribution(values)
                                      for label, values in space.choices().items()}
    seed_arch = space.sample(random.Random(5))
    strategy.tell(seed_arch, Outcome.trained(0.7, throughput=10.0, latency_ms=100.0))  # not asked: added
    asked, failed = strategy.ask(), strategy.ask()
    strategy.tell(asked, Outcome.trained(0.6, throughput=20.0, latency_ms=10.0))
    strategy.tell(failed, None)
    trials = strategy.study.trials
    assert trials[0].params == space.choices_of(seed_arch)
    assert trials[0].values == [0.7, pytest.approx(-2.0)]  # latency objective: -log10 ms, maximised
    assert trials[1].params == space.choices_of(asked) and trials[1].values == [0.6, pytest.approx(-1.0)]
    assert trials[2].state is TrialState.FAIL and trials[2].constraints == {}


@pytest.mark.parametrize("name", ["nsga2", "motpe"])
def test_optuna_duplicates_are_replaced_by_unseen_neighbours(name):
    space = two_objective_space()
    strategy = create_strategy(name, space, seed=0, **SMALL[name])
    proposed = run(strategy, synthetic_outcome, asks=80)
    assert len(set(proposed)) == 80
    failed = [t for t in strategy.study.trials if t.state is TrialState.FAIL]
    assert len(failed) < 80  # at most one discarded sample per proposal, and far fewer


# ---- resume -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*MULTI_OBJECTIVE, "evolution", "random"])
@pytest.mark.parametrize("limits", [SpeedLimits(), SpeedLimits(max_latency_ms=30.0)])
@pytest.mark.parametrize("stored", [9, 30])  # nsga2 (generations of 6): mid-generation, several generations in
def test_replaying_stored_outcomes_into_a_fresh_strategy_gives_the_same_next_proposals(name, limits, stored):
    """What ``--resume`` does: a fresh strategy (for nsga2/motpe a fresh in-memory Optuna study) is told
    the stored outcomes in order; it then proposes exactly what the uninterrupted strategy proposes."""
    space = get_space("hybrid_metaformer_tiny")
    options = {**SMALL.get(name, {}), "limits": limits, "predict_speed": False}

    def outcome_of(i: int, arch: Architecture) -> Outcome | None:
        told = synthetic_outcome_tiny(arch)
        if i % 7 == 3:
            return None  # failed
        if told.latency_ms > 30.0 and limits.any:
            return Outcome.infeasible(throughput=told.throughput, latency_ms=told.latency_ms)
        return told

    uninterrupted = create_strategy(name, space, seed=4, **options)
    history = []
    for i in range(stored):
        arch = uninterrupted.ask()
        history.append((arch, outcome_of(i, arch)))
        uninterrupted.tell(*history[-1])
    resumed = create_strategy(name, space, seed=4, **options)
    for arch, outcome in history:
        resumed.tell(arch, outcome)
    assert [uninterrupted.ask() for _ in range(6)] == [resumed.ask() for _ in range(6)]


# ---- quality ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mo-evolution", "motpe"])
def test_multi_objective_strategies_find_more_hypervolume_than_random_and_accuracy_only_search(name):
    """Hypervolume (log throughput vs accuracy) after 150 evaluations on 8 problem seeds: clearly more
    than random search, and more than accuracy-only evolution, which crowds at the slow, accurate end."""
    space = two_objective_space()
    found: dict[str, list[float]] = {name: [], "random": [], "evolution": []}
    for seed in range(8):
        everything = [synthetic_outcome(a, seed) for a in (space.sample(random.Random(i)) for i in range(400))]
        reference = (min(o.throughput for o in everything), min(o.accuracy for o in everything))
        for strategy_name in found:
            outcomes = [synthetic_outcome(a, seed) for a in run(create_strategy(strategy_name, space, seed=seed),
                                                                lambda a: synthetic_outcome(a, seed), 150)]
            found[strategy_name].append(hypervolume_2d([(o.throughput, o.accuracy) for o in outcomes], *reference))
    mean = {strategy_name: statistics.mean(values) for strategy_name, values in found.items()}
    assert mean[name] > 1.05 * mean["random"] and mean[name] > 1.1 * mean["evolution"], mean
    assert sum(m > r for m, r in zip(found[name], found["random"])) >= 6, found


# ---- outcomes, progress, settings ---------------------------------------------------------------


def test_trial_progress_builds_the_outcome_from_the_reports():
    measure = {"phase": "measure", "epoch": 0, "val_accuracy": 0.0, "feasible": True, "throughput": 500.0,
               "latency_ms": 4.0}
    progress = TrialProgress()
    assert progress.outcome is None  # nothing reported: a failed trial
    progress.observe(measure)
    assert progress.outcome is None  # measured, never trained
    progress.observe({"phase": "epoch", "epoch": 1, "val_accuracy": 0.6})
    progress.observe({"phase": "epoch", "epoch": 2, "val_accuracy": 0.55})
    assert progress.outcome == Outcome.trained(0.6, throughput=500.0, latency_ms=4.0)
    over = TrialProgress()
    over.observe({**measure, "feasible": False, "latency_ms": 40.0})
    assert over.outcome == Outcome.infeasible(throughput=500.0, latency_ms=40.0)
    broken = TrialProgress()
    broken.observe({**measure, "throughput": None, "latency_ms": float("nan")})
    broken.observe({"phase": "epoch", "epoch": 1, "val_accuracy": 0.5})
    assert broken.outcome == Outcome.trained(0.5) and not broken.outcome.measured


def record(status: TrialStatus, accuracy=None, throughput=None, latency_ms=None) -> TrialRecord:
    return TrialRecord(id=1, search="s", number=0, status=status, arch=None, arch_hash="h", recipe=None,
                       recipe_hash="r", accuracy=accuracy, throughput=throughput, latency_ms=latency_ms)


def test_outcome_from_a_stored_trial():
    assert Outcome.from_record(record(TrialStatus.COMPLETED, 0.8, 100.0, 2.0)) == Outcome.trained(0.8, 100.0, 2.0)
    assert Outcome.from_record(record(TrialStatus.STOPPED, 0.5, 100.0, 2.0)) == Outcome.trained(0.5, 100.0, 2.0)
    assert Outcome.from_record(record(TrialStatus.INFEASIBLE, None, 10.0, 20.0)) == Outcome.infeasible(10.0, 20.0)
    assert Outcome.from_record(record(TrialStatus.FAILED, 0.4, 10.0, 20.0)) is None
    assert Outcome.from_record(record(TrialStatus.COMPLETED, None, 10.0, 20.0)) is None  # unscored
    assert Outcome.from_record(record(TrialStatus.COMPLETED, 0.8, 0.0, None)) == Outcome.trained(0.8)


def test_outcome_values_and_violations():
    outcome = Outcome.trained(0.8, throughput=1000.0, latency_ms=0.1)
    assert outcome.values(SpeedObjective.THROUGHPUT) == (0.8, pytest.approx(3.0))
    assert outcome.values(SpeedObjective.LATENCY) == (0.8, pytest.approx(1.0))
    assert outcome.violation(SpeedLimits(max_latency_ms=0.01)) == 0.0  # feasible is feasible
    over = Outcome.infeasible(throughput=50.0, latency_ms=40.0)
    assert over.values(SpeedObjective.THROUGHPUT) is None
    assert over.violation(SpeedLimits(max_latency_ms=20.0, min_throughput=100.0)) == pytest.approx(2 * math.log10(2))
    assert over.violation(SpeedLimits()) > 0  # limits the strategy was not told: still behind every feasible one
    with pytest.raises(ValueError, match="a feasible trial has an accuracy, an infeasible one none"):
        Outcome(feasible=True)
    with pytest.raises(ValueError, match="outcome: throughput must be > 0"):
        Outcome.trained(0.5, throughput=0.0)


@pytest.mark.parametrize("latency", [None, 0.5, 1.0, 1.0001, 3.0])
@pytest.mark.parametrize("throughput", [None, 10.0, 99.99, 100.0, 1000.0])
def test_speed_limit_excess_is_zero_exactly_when_the_measurement_passes(latency, throughput):
    measure = MeasureSettings(max_latency_ms=1.0, min_throughput=100.0)
    excess = SpeedLimits.of(measure).excess(latency, throughput)
    assert (excess == 0.0) == (measure.violation(latency, throughput) is None)


def test_objective_is_stored_with_the_search_and_compared_on_resume():
    settings = SearchSettings(space="hybrid_metaformer_tiny", strategy="motpe", seed=0, recipe=ProxyRecipe(),
                              measure=MeasureSettings(), early_stopping=EarlyStopping.MO_ASHA,
                              objective=SpeedObjective.LATENCY)
    config = settings.to_config()
    assert config["objective"] == "latency" and SearchSettings.from_config(config) == settings
    old = {k: v for k, v in config.items() if k != "objective"}  # stored before --objective existed
    assert SearchSettings.from_config(old).objective is SpeedObjective.THROUGHPUT
    assert settings.conflicts(SearchRequest(objective="throughput")) == [
        "objective (stored 'latency', given 'throughput')"]
    assert settings.conflicts(SearchRequest(objective="latency")) == []
    with pytest.raises(ValueError, match="unknown objective 'fast'; choices: throughput, latency"):
        settings.conflicts(SearchRequest(objective="fast"))
    assert parse_objective(None) is SpeedObjective.THROUGHPUT
