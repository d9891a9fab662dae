"""The strategy benchmarks: the synthetic MixerBench-shaped table, ``benchmarks.predictor`` and the
multi-objective-versus-random key of ``benchmarks.search_quality``."""
from __future__ import annotations

import json
import math

import pytest

from benchmarks import predictor
from benchmarks.search_quality import against_random_at_double
from benchmarks.synthetic_mixerbench import synthetic_table
from nas.bench import load_table
from nas.bench.quality import QualityStats
from search_spaces import get_space


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "synthetic.json"
    path.write_text(json.dumps(synthetic_table(0).to_dict()))
    return path


def test_synthetic_table_covers_the_mixerbench_space_reproducibly(table_path):
    table = load_table(table_path)
    assert len(table) == len(table.completed) == 1764 and table.space.describe() == get_space("mixerbench").describe()
    assert table.entries == synthetic_table(0).entries and table.entries != synthetic_table(1).entries
    assert table.true_hypervolume() > 0 and len(table.true_front()) >= 5


def test_predictor_benchmark_reports_skips_and_rank_correlation(table_path, tmp_path, capsys):
    out = tmp_path / "predictor.json"
    code = predictor.main(["--table", str(table_path), "--seeds", "2", "--budget", "40", "--strategies",
                           "random,mo-evolution", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    table = load_table(table_path)
    middle = sorted(e.latency_ms for e in table.entries)[len(table) // 2 - 1]
    assert report["limit_ms"] == pytest.approx(middle, rel=0.01)
    for strategy in ("random", "mo-evolution"):
        on, off = report["results"][strategy]["with_predictor"], report["results"][strategy]["without_predictor"]
        assert 0 <= on["infeasible_share_after_20"] < off["infeasible_share_after_20"] <= 1
        assert 0 < on["hv_ratio"] <= 1 and 0.5 < on["spearman_table"] <= 1
        assert math.isfinite(on["spearman_at_proposal"])
    assert "infeasible after 20" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--strategies", "bayes"], "error: unknown strategy 'bayes'"),
    (["--budget", "20"], "error: --seeds and --workers must be >= 1 and --budget > 20"),
    (["--table", "/nonexistent.json"], "error: benchmark table /nonexistent.json: cannot read it"),
])
def test_predictor_benchmark_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert predictor.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def stats(mean: float) -> QualityStats:
    return QualityStats(hv_ratio_mean=mean, hv_ratio_std=0.0, seeds=1, hv_ratio_with_stopped_mean=mean,
                        hv_ratio_with_stopped_std=0.0, trials_mean=0.0, completed_mean=0.0, stopped_mean=0.0,
                        infeasible_mean=0.0, device_h_mean=0.0)


def test_multi_objective_strategies_are_compared_with_random_search_at_twice_their_budget():
    results = {"random": {"25": stats(0.5), "50": stats(0.7), "100": stats(0.8)},
               "motpe": {"25": stats(0.75), "50": stats(0.79), "100": stats(0.9)},
               "evolution": {"25": stats(0.9), "50": stats(0.9), "100": stats(0.9)}}
    assert against_random_at_double(results) == {"motpe": {"25": 0.05, "50": -0.01}}
    assert against_random_at_double({"motpe": results["motpe"]}) == {}
