"""Search strategies: no repeats, exhaustion, population rules, quality vs random, the NNI adapter."""
from __future__ import annotations

import importlib.util
import random
import statistics
from collections import Counter

import pytest

from nas.objectives import Outcome
from nas.strategies import STRATEGY_NAMES, create_strategy
from nas.strategies.evolution import RegularizedEvolution
from nas.strategies.nni_adapter import BAD_SCORE
from search_spaces import Architecture, SearchSpace, get_space

HAS_NNI = importlib.util.find_spec("nni") is not None


def space_of(stages: list[dict], name: str = "test") -> SearchSpace:
    return SearchSpace.from_dict({"name": name, "target_res": 32, "stages": stages})


def bench_space() -> SearchSpace:
    """108 choices per stage (~1.4e8 architectures) over mixers that build at any width and grid."""
    stage = {"mixer": ["sepconv", "pooling", "mhsa"], "depth": [1, 2, 3, 4, 5, 6],
             "width": [16, 32, 48, 64, 80, 96], "mixer_kwargs": {"mhsa": {"head_dim": 16}}}
    return space_of([stage] * 4, name="bench")


def four_arch_space() -> SearchSpace:
    fixed = {"mixer": ["pooling"], "depth": [1], "width": [32]}
    return space_of([{"mixer": ["sepconv", "pooling"], "depth": [1], "width": [32]},
                     {"mixer": ["pooling"], "depth": [1, 2], "width": [32]}, fixed, fixed], name="four")


def synthetic_objective(space: SearchSpace, seed: int):
    """A fixed random additive score per choice, plus a bonus for equal neighbouring mixers."""
    rng = random.Random(seed)
    weights = {label: {value: rng.random() for value in values} for label, values in space.choices().items()}

    def score(arch: Architecture) -> float:
        picked = space.choices_of(arch)
        bonus = sum(0.5 for a, b in zip(arch.mixers, arch.mixers[1:]) if a == b)
        return sum(weights[label][value] for label, value in picked.items()) + bonus

    return score


def run(strategy, score, asks: int) -> list[Architecture]:
    proposed = []
    for _ in range(asks):
        arch = strategy.ask()
        if arch is None:
            break
        proposed.append(arch)
        strategy.tell(arch, Outcome.trained(score(arch)))
    return proposed


# ---- contract shared by all strategies ---------------------------------------------------------


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_no_repeats_and_only_valid_architectures_on_the_tiny_space(name):
    tiny = get_space("hybrid_metaformer_tiny")
    strategy = create_strategy(name, tiny, seed=3)
    proposed = run(strategy, synthetic_objective(tiny, 0), asks=200)
    assert len(proposed) == 200
    assert max(Counter(proposed).values()) == 1
    assert all(tiny.is_valid(a) for a in proposed)


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_exhausting_a_small_space_returns_none(name):
    space = four_arch_space()
    strategy = create_strategy(name, space, seed=0, **({"population_size": 2, "sample_size": 1}
                                                       if name == "evolution" else {}))
    in_flight = [strategy.ask(), strategy.ask()]  # unanswered proposals count as seen too
    proposed = in_flight + run(strategy, lambda a: 1.0, asks=10)
    assert len(proposed) == len(set(proposed)) == 4
    assert set(proposed) == set(space.enumerate())
    assert strategy.ask() is None


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_architectures_marked_seen_are_never_proposed(name):
    space = four_arch_space()
    earlier = list(space.enumerate())[:3]
    strategy = create_strategy(name, space, seed=1)
    for arch in earlier:
        strategy.mark_seen(arch)
    assert strategy.ask() == list(space.enumerate())[3]
    assert strategy.ask() is None


def test_same_seed_same_proposals():
    tiny = get_space("hybrid_metaformer_tiny")
    score = synthetic_objective(tiny, 1)
    first = run(create_strategy("evolution", tiny, seed=7, population_size=4, sample_size=2), score, 12)
    again = run(create_strategy("evolution", tiny, seed=7, population_size=4, sample_size=2), score, 12)
    other = run(create_strategy("evolution", tiny, seed=8, population_size=4, sample_size=2), score, 12)
    assert first == again and first != other


@pytest.mark.parametrize("outcome", [0.5, "0.5", True, {"accuracy": 0.5}])
def test_tell_takes_an_outcome_or_none(outcome):
    strategy = create_strategy("random", four_arch_space())
    with pytest.raises(ValueError, match="outcome must be an Outcome, or None for a failed trial"):
        strategy.tell(strategy.ask(), outcome)


@pytest.mark.parametrize("accuracy", [float("nan"), float("inf"), "0.5", True])
def test_outcomes_reject_accuracies_that_are_not_finite_numbers(accuracy):
    with pytest.raises(ValueError, match="outcome: accuracy must be a finite number or None"):
        Outcome.trained(accuracy)


# ---- factory ------------------------------------------------------------------------------------


def test_create_strategy_names_and_errors():
    assert STRATEGY_NAMES == ("random", "evolution", "grid", "nni-tpe", "nni-evolution", "mo-evolution", "nsga2",
                              "motpe")
    with pytest.raises(ValueError, match=r"unknown strategy 'bayes'; choices: random, evolution, grid, nni-tpe, "
                                         r"nni-evolution, mo-evolution, nsga2, motpe"):
        create_strategy("bayes", four_arch_space())
    with pytest.raises(ValueError, match=r"strategy 'evolution': unknown option\(s\) \['pop'\]; accepted: "
                                         r"\['population_size', 'sample_size', 'parent_tries'\]"):
        create_strategy("evolution", four_arch_space(), pop=3)
    with pytest.raises(ValueError, match=r"strategy 'random': unknown option\(s\) \['population_size'\]; "
                                         r"accepted: none"):
        create_strategy("random", four_arch_space(), population_size=3)
    with pytest.raises(ValueError, match=r"sample_size \(6\) must not exceed population_size \(5\)"):
        create_strategy("evolution", four_arch_space(), population_size=5, sample_size=6)


@pytest.mark.skipif(HAS_NNI, reason="nni is installed")
@pytest.mark.parametrize("name", ["nni-tpe", "nni-evolution"])
def test_nni_strategies_explain_the_missing_extra(name):
    with pytest.raises(ValueError, match=rf"strategy '{name}' needs the optional 'nni' extra: "
                                         r"pip install 'mixer-nas\[nni\]'"):
        create_strategy(name, four_arch_space())


# ---- regularised evolution ----------------------------------------------------------------------


def test_failed_trials_never_enter_the_population():
    space = bench_space()
    evolution = RegularizedEvolution(space, seed=0, population_size=3, sample_size=2)
    failed = evolution.ask()
    evolution.tell(failed, None)
    infeasible = evolution.ask()
    evolution.tell(infeasible, Outcome.infeasible(throughput=10.0, latency_ms=90.0))
    assert list(evolution.population) == []
    ok = evolution.ask()
    evolution.tell(ok, Outcome.trained(0.5))
    assert list(evolution.population) == [(ok, Outcome.trained(0.5))]
    assert failed not in run(evolution, lambda a: 0.1, asks=50)


def test_population_ages_out_the_oldest_not_the_worst():
    space = bench_space()
    evolution = RegularizedEvolution(space, seed=0, population_size=20, sample_size=5)
    rng = random.Random(0)
    told = []
    while len(told) < 25:
        arch = space.sample(rng)
        if arch not in {a for a, _ in told}:
            told.append((arch, 100.0 - len(told)))  # the oldest are the best
    for arch, score in told:
        evolution.tell(arch, Outcome.trained(score))
    assert [(a, o.accuracy) for a, o in evolution.population] == told[5:]


def test_seeds_join_the_population_and_full_populations_breed_single_choice_mutants():
    space = bench_space()
    evolution = RegularizedEvolution(space, seed=2, population_size=4, sample_size=2)
    seed_arch = space.sample(random.Random(9))
    evolution.tell(seed_arch, Outcome.trained(10.0))  # a hand design evaluated before the search
    assert list(evolution.population) == [(seed_arch, Outcome.trained(10.0))]
    score = synthetic_objective(space, 2)
    run(evolution, score, asks=3)  # population now full: 1 seed + 3 random
    for _ in range(20):
        members = {a: space.choices_of(a) for a, _ in evolution.population}
        child = evolution.ask()
        picked = space.choices_of(child)
        distances = [sum(picked[k] != v[k] for k in picked) for v in members.values()]
        assert min(distances) == 1
        evolution.tell(child, Outcome.trained(score(child)))


def test_evolution_beats_random_search_on_a_synthetic_objective():
    """Mean best score after 150 evaluations over 10 seeds; regularised evolution must win clearly."""
    space = bench_space()
    best = {"random": [], "evolution": []}
    for seed in range(10):
        score = synthetic_objective(space, 100 + seed)
        for name in best:
            best[name].append(max(score(a) for a in run(create_strategy(name, space, seed=seed), score, 150)))
    wins = sum(e > r for e, r in zip(best["evolution"], best["random"]))
    assert statistics.mean(best["evolution"]) > statistics.mean(best["random"]) + 0.5, best
    assert wins >= 8, best


# ---- NNI adapter (logic tested with a scripted tuner; real NNI only when installed) -----------------


class ScriptedTuner:
    """NNI's classic Tuner methods; proposes a fixed script and records every call."""

    def __init__(self, script: list[dict]):
        self.script = list(script)
        self.calls: list[tuple] = []
        self.search_space = None

    def update_search_space(self, search_space):
        self.search_space = search_space

    def generate_parameters(self, parameter_id):
        params = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        self.calls.append(("generate", parameter_id))
        return dict(params)

    def receive_trial_result(self, parameter_id, parameters, value):
        self.calls.append(("result", parameter_id, parameters, value))

    def trial_end(self, parameter_id, success):
        self.calls.append(("end", parameter_id, success))

    def import_data(self, data):
        self.calls.append(("import", data))


def test_nni_adapter_answers_duplicates_and_forwards_results():
    space = bench_space()
    rng = random.Random(0)
    a, b, seed_arch = space.sample(rng), space.sample(rng), space.sample(rng)
    tuner = ScriptedTuner([space.choices_of(a), space.choices_of(a), space.choices_of(b), space.choices_of(a),
                           space.choices_of(b)])
    strategy = create_strategy("nni-tpe", space, seed=0, tuner=tuner)
    assert tuner.search_space == {label: {"_type": "choice", "_value": values}
                                  for label, values in space.choices().items()}

    assert strategy.ask() == a                      # id 0
    assert strategy.ask() == b                      # id 1: a again (in flight) -> BAD_SCORE, id 2: b
    assert tuner.calls[1:4] == [("generate", 1), ("result", 1, space.choices_of(a), BAD_SCORE), ("generate", 2)]
    strategy.tell(a, Outcome.trained(0.7))
    assert tuner.calls[-1] == ("result", 0, space.choices_of(a), 0.7)
    strategy.tell(b, None)                          # failed trial -> NNI failure, no score
    assert tuner.calls[-1] == ("end", 2, False)
    strategy.tell(seed_arch, Outcome.trained(0.9))  # not proposed by the tuner: history import
    assert tuner.calls[-1] == ("import", [{"parameter": space.choices_of(seed_arch), "value": 0.9}])

    # The script now repeats a (score known: 0.7) then b forever (failed: BAD_SCORE): nothing new.
    strategy.max_retries = 4
    assert strategy.ask() is None
    results = [call[3] for call in tuner.calls if call[0] == "result"][2:]
    assert results == [0.7, BAD_SCORE, BAD_SCORE, BAD_SCORE]


def test_nni_adapter_answers_invalid_proposals_with_a_bad_score():
    space = SearchSpace.from_dict({**bench_space().describe(), "constraints": [{"type": "nondecreasing_width"}]})
    rng = random.Random(1)
    good = space.sample(rng)
    widths = [96, 16, 16, 16]
    bad = {**space.choices_of(good), **{f"stage{i}.width": w for i, w in enumerate(widths, start=1)}}
    tuner = ScriptedTuner([bad, space.choices_of(good)])
    strategy = create_strategy("nni-evolution", space, tuner=tuner)
    assert strategy.ask() == good
    assert tuner.calls[:2] == [("generate", 0), ("result", 0, bad, BAD_SCORE)]


@pytest.mark.skipif(not HAS_NNI, reason="needs the optional nni extra")
@pytest.mark.parametrize("name", ["nni-tpe", "nni-evolution"])
def test_real_nni_tuners_propose_without_repeats(name):
    space = bench_space()
    proposed = run(create_strategy(name, space, seed=0), synthetic_objective(space, 0), asks=30)
    assert len(proposed) == len(set(proposed)) == 30
