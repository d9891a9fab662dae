"""The per-stage speed predictor and how strategies use it to skip candidates far outside the limits."""
from __future__ import annotations

import math
import random
import statistics

import pytest

from nas.objectives import Outcome, SpeedLimits
from nas.strategies import create_strategy
from nas.strategies.speed_predictor import MIN_LOG_ERROR, SpeedPrediction, SpeedPredictor
from search_spaces import Architecture, SearchSpace

MIXER_COST = {"sepconv": 0.2, "pooling": 0.05, "mhsa": 0.6}  # log10 ms per stage and block


def space() -> SearchSpace:
    stage = {"mixer": list(MIXER_COST), "depth": [1, 2], "width": [16, 32], "mixer_kwargs": {"mhsa": {"head_dim": 16}}}
    return SearchSpace.from_dict({"name": "speed", "target_res": 32, "stages": [stage] * 4})


def true_latency(arch: Architecture, noise: float = 0.0) -> float:
    """Log-additive per stage (what the lookup table models), times optional noise."""
    log_ms = sum(MIXER_COST[m] * (i + 1) / 2 + 0.1 * d + 0.004 * w
                 for i, (m, d, w) in enumerate(zip(arch.mixers, arch.depths, arch.dims)))
    rng = random.Random(arch.hash)
    return 10 ** log_ms * math.exp(rng.gauss(0, noise))


def true_throughput(arch: Architecture) -> float:
    return 2000.0 / true_latency(arch)


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values):
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0] * len(values)
        for rank, i in enumerate(order):
            out[i] = rank
        return out
    return statistics.correlation(ranks(a), ranks(b))


def sample(n: int, seed: int) -> list[Architecture]:
    rng, out = random.Random(seed), []
    while len(out) < n:
        arch = space().sample(rng)
        if arch not in out:
            out.append(arch)
    return out


def test_lookup_table_recovers_a_per_stage_latency_model_and_generalises_to_unseen_architectures():
    predictor = SpeedPredictor(space(), min_trials=8)
    seen = sample(60, seed=0)
    for arch in seen[:7]:
        predictor.observe(arch, true_latency(arch), true_throughput(arch))
    assert predictor.predict(seen[0]) is None  # fewer than min_trials measurements
    for arch in seen[7:40]:
        predictor.observe(arch, true_latency(arch), true_throughput(arch))
    unseen = [a for a in sample(200, seed=1) if a not in seen[:40]][:80]
    predictions = [predictor.predict(a) for a in unseen]
    measured = [true_latency(a) for a in unseen]
    assert spearman([p.latency_ms for p in predictions], measured) > 0.95
    assert statistics.median(abs(math.log10(p.latency_ms / m)) for p, m in zip(predictions, measured)) < 0.05
    assert spearman([p.throughput for p in predictions], [true_throughput(a) for a in unseen]) > 0.95
    assert predictions[0].latency_log_error >= MIN_LOG_ERROR


def test_leave_one_out_error_grows_with_measurement_noise():
    errors = []
    for noise in (0.0, 0.3):
        predictor = SpeedPredictor(space())
        for arch in sample(40, seed=2):
            latency = true_latency(arch, noise)
            predictor.observe(arch, latency, 2000.0 / latency)
        errors.append(predictor.predict(sample(1, seed=3)[0]).latency_log_error)
    assert errors[0] == pytest.approx(MIN_LOG_ERROR, abs=0.02) and errors[1] > 0.08


def test_prediction_beyond_limits_allows_the_stated_tolerance():
    prediction = SpeedPrediction(latency_ms=20.0, throughput=100.0, latency_log_error=0.05, throughput_log_error=0.1)
    assert prediction.beyond(SpeedLimits(), 1.0) == 0.0
    assert prediction.beyond(SpeedLimits(max_latency_ms=10.0), 1.0) == pytest.approx(math.log10(2) - 0.05)
    assert prediction.beyond(SpeedLimits(max_latency_ms=10.0), 7.0) == 0.0  # within 7 errors: maybe inside
    assert prediction.beyond(SpeedLimits(max_latency_ms=40.0), 0.0) == 0.0
    both = SpeedLimits(max_latency_ms=10.0, min_throughput=400.0)
    assert prediction.beyond(both, 1.0) == pytest.approx(math.log10(2) - 0.05 + math.log10(4) - 0.1)


def test_observe_rejects_broken_measurements():
    predictor = SpeedPredictor(space())
    with pytest.raises(ValueError, match="measurements must be positive and finite"):
        predictor.observe(sample(1, seed=0)[0], 0.0, 10.0)
    with pytest.raises(ValueError, match="min_trials must be >= 2"):
        SpeedPredictor(space(), min_trials=1)


def infeasible_share(strategy, limit_ms: float, asks: int = 60, warm_up: int = 20) -> float:
    """Ask/tell with true speeds (slower is more accurate, as on real tables): the share of the asks after
    the first ``warm_up`` that were over the limit."""
    late = []
    for i in range(asks):
        arch = strategy.ask()
        latency = true_latency(arch, noise=0.03)
        feasible = latency <= limit_ms
        accuracy = 0.5 + 0.1 * math.log10(latency) + 0.1 * random.Random(arch.hash).random()
        strategy.tell(arch, Outcome(feasible=feasible, accuracy=accuracy if feasible else None, latency_ms=latency,
                                    throughput=2000.0 / latency))
        if i >= warm_up:
            late.append(not feasible)
    return sum(late) / len(late)


@pytest.mark.parametrize("name", ["random", "evolution", "mo-evolution", "nsga2", "motpe"])
def test_strategies_skip_candidates_predicted_over_the_limit(name):
    limit = statistics.median(true_latency(a) for a in sample(300, seed=4))  # half the space is over it
    limits = SpeedLimits(max_latency_ms=limit)
    shares, skipped = {}, 0
    for predict in (True, False):
        strategies = [create_strategy(name, space(), seed=seed, limits=limits, predict_speed=predict)
                      for seed in (0, 1)]
        shares[predict] = statistics.mean(infeasible_share(s, limit) for s in strategies)
        skipped += sum(s.skipped_count for s in strategies) if predict else 0
        assert predict or all(s.skipped_count == 0 for s in strategies)
    assert skipped > 0
    assert shares[True] < 0.1 and shares[True] < shares[False], shares


def test_when_everything_left_is_predicted_too_slow_the_least_bad_is_still_tried():
    small = SearchSpace.from_dict({"name": "small", "target_res": 32, "stages": [
        {"mixer": ["sepconv", "pooling"], "depth": [1], "width": [16]}] * 4})  # 16 architectures
    strategy = create_strategy("random", small, seed=0, limits=SpeedLimits(max_latency_ms=1e-3))
    proposed = []
    while (arch := strategy.ask()) is not None:
        proposed.append(arch)
        latency = true_latency(arch)
        strategy.tell(arch, Outcome.infeasible(latency_ms=latency, throughput=2000.0 / latency))
    assert sorted(a.hash for a in proposed) == sorted(a.hash for a in small.enumerate())  # nothing is lost
    assert strategy.skipped_count > 0


def test_grid_never_skips_and_strategies_without_limits_build_no_predictor():
    limits = SpeedLimits(max_latency_ms=1e-3)
    grid = create_strategy("grid", space(), limits=limits)
    assert grid.predictor is None
    assert create_strategy("mo-evolution", space()).predictor is None
    assert create_strategy("mo-evolution", space(), limits=limits).predictor is not None


def test_running_sums_give_the_direct_ridge_solution_also_after_a_measurement_is_replaced():
    import numpy as np

    predictor = SpeedPredictor(space(), ridge=0.1)
    archs = sample(50, seed=5)
    measured = {}
    for i, arch in enumerate(archs + archs[:5]):  # the first five measured twice: the second replaces the first
        latency = true_latency(arch, noise=0.2) * (1.5 if i >= len(archs) else 1.0)
        predictor.observe(arch, latency, 3000.0 / latency)
        measured[arch] = latency
    x = np.array([predictor.features(a) for a in measured])
    y = np.array([[math.log10(v), -math.log10(3000.0 / v)] for v in measured.values()])
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    gram_inverse = np.linalg.inv(xc.T @ xc + 0.1 * np.eye(x.shape[1]))
    weights = gram_inverse @ xc.T @ yc
    leverage = np.einsum("ij,ij->i", xc @ gram_inverse, xc) + 1.0 / len(x)
    errors = np.maximum(np.sqrt((((yc - xc @ weights) / (1 - leverage)[:, None]) ** 2).mean(axis=0)), MIN_LOG_ERROR)
    for arch in sample(10, seed=6):
        expected = (predictor.features(arch) - x.mean(axis=0)) @ weights + y.mean(axis=0)
        got = predictor.predict(arch)
        assert math.log10(got.latency_ms) == pytest.approx(expected[0], abs=1e-9)
        assert -math.log10(got.throughput) == pytest.approx(expected[1], abs=1e-9)
        assert (got.latency_log_error, got.throughput_log_error) == pytest.approx(tuple(errors), abs=1e-9)
        cheap = predictor.predict(arch, with_errors=False)
        assert cheap.latency_ms == got.latency_ms and math.isnan(cheap.latency_log_error)
        assert cheap.beyond(SpeedLimits(max_latency_ms=got.latency_ms / 2), 0.0) == pytest.approx(math.log10(2))
