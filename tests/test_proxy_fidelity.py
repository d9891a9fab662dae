"""``benchmarks.proxy_fidelity``: selection, resume cache, tau math, bad input, and a real tiny run.

The end-to-end test retrains three real ``mixerbench`` architectures on a 200-image glyphs task
(1 proxy epoch, factor 2) through ``run_trial``: first one run in-process (``--limit 1``), then the
other two in a two-process pool from the cache, then a rerun that trains nothing.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys

import pytest

from nas.bench import BenchEntry, BenchTable
from nas.errors import UsageError
from nas.rank_agreement import kendall_tau
from search_spaces import get_space

from benchmarks.proxy_fidelity.__main__ import cache_path, main
from benchmarks.proxy_fidelity.long_runs import (LongRun, RunCache, long_recipe, long_run_config, measure_settings,
                                                 train_long)
from benchmarks.proxy_fidelity.report import FidelityRow, rung_taus, selection_taus
from benchmarks.proxy_fidelity.selection import select_architectures
from bench_fixture import synthetic_entry, synthetic_space, synthetic_table

TINY_RECIPE = {"dataset": "glyphs:n=200", "epochs": 1, "batch_size": 32}
TINY_MEASURE = {"target_res": 32, "latency_batch": 1, "throughput_batch": 4, "warmup": 1, "repeats": 2,
                "max_latency_ms": 0.001}  # a limit no model meets: the long runs must drop it


# --- Kendall tau on numbers worked out by hand -------------------------------------------------

def test_kendall_tau_counts_concordant_and_discordant_pairs():
    # pairs of (1,2,3,4) vs (1,3,2,4): 5 concordant, 1 discordant -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]).tau == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [30, 20, 10]).tau == pytest.approx(-1.0)
    # tau-b: one tie in x among 6 pairs, 5 concordant -> 5 / sqrt((6 - 1) * (6 - 0))
    tied = kendall_tau([1, 1, 2, 3], [1, 2, 3, 4])
    assert tied.tau == pytest.approx(5 / math.sqrt(30))
    assert tied.pairs == 4 and 0 < tied.p_value < 1


def test_kendall_tau_is_undefined_without_two_distinct_values():
    assert kendall_tau([0.5], [0.7]) is None
    assert kendall_tau([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]) is None
    with pytest.raises(ValueError, match="paired"):
        kendall_tau([1, 2], [1, 2, 3])


def _long(entry: BenchEntry, curve: tuple[float, ...], error: str | None = None) -> LongRun:
    return LongRun(entry.arch.hash, "r" * 16, curve, (1.0,) * len(curve), 2.0, "cpu:test x1", error)


def test_taus_compare_the_right_epochs():
    table = synthetic_table()
    entries = sorted(table.completed, key=lambda e: e.arch.hash)[:4]
    # proxy curves (3 epochs): epoch 1 ranks a<b<c<d, epoch 2 d<c<b<a, final a<b<c<d but best epoch = epoch 2
    curves = [(0.1, 0.9, 0.50), (0.2, 0.8, 0.51), (0.3, 0.7, 0.52), (0.4, 0.6, 0.53)]
    proxy = [dataclasses.replace(e, val_accuracy=c) for e, c in zip(entries, curves)]
    longs = [(0.5, 0.1, 0.4, 0.9, 0.4, 0.9), (0.5, 0.2, 0.3, 0.8, 0.3, 0.8),
             (0.5, 0.3, 0.2, 0.7, 0.2, 0.7), (0.5, 0.4, 0.1, 0.6, 0.1, 0.6)]
    rows = [FidelityRow(p, False, _long(p, c)) for p, c in zip(proxy, longs)]
    taus = selection_taus(rows, long_epochs=6)
    assert taus["proxy_vs_long"].tau == pytest.approx(-1.0)  # final 0.50..0.53 vs final 0.9..0.6
    assert taus["recorded_vs_long"].tau == pytest.approx(1.0)  # best 0.9..0.6 vs best 0.9..0.6
    assert taus["rung1_vs_proxy"].tau == pytest.approx(1.0)
    assert taus["epoch_1_vs_proxy"].tau == pytest.approx(1.0)
    assert taus["epoch_2_vs_proxy"].tau == pytest.approx(-1.0)
    assert "epoch_3_vs_proxy" not in taus  # the final epoch against itself says nothing
    assert taus["epoch_2_vs_long"].tau == pytest.approx(1.0)
    assert taus["epoch_3_vs_long"].tau == pytest.approx(-1.0)
    # a failed or unfinished long run leaves the long taus but not the rung taus
    rows[0] = FidelityRow(proxy[0], False, _long(proxy[0], (0.5,), error="RuntimeError: boom"))
    rows[1] = FidelityRow(proxy[1], False, None)
    fewer = selection_taus(rows, long_epochs=6)
    assert fewer["proxy_vs_long"].pairs == 2 and fewer["rung1_vs_proxy"].pairs == 4
    assert rung_taus(proxy)["rung1_vs_proxy"].pairs == 4


# --- selection ---------------------------------------------------------------------------------

def test_selection_takes_the_whole_front_then_seeded_others():
    table = synthetic_table()
    front = table.true_front()
    assert 1 < len(front) < 10
    chosen = select_architectures(table, 10, seed=0)
    assert chosen.front == tuple(front)
    assert len(chosen.entries) == 10 and len({e.arch for e in chosen.entries}) == 10
    assert not {e.arch for e in chosen.others} & {e.arch for e in front}
    assert chosen == select_architectures(table, 10, seed=0)
    draws = {tuple(e.arch.hash for e in select_architectures(table, 10, seed=s).others) for s in range(5)}
    assert len(draws) > 1
    everything = select_architectures(table, len(table.completed), seed=3)
    assert {e.arch for e in everything.entries} == {e.arch for e in table.completed}


def test_selection_thins_a_large_front_keeping_its_ends():
    table = synthetic_table()
    front = table.true_front()
    chosen = select_architectures(table, 2, seed=0)
    assert chosen.front == (front[0], front[-1]) and chosen.others == ()


def test_selection_skips_failed_rows_and_refuses_too_many():
    space = synthetic_space()
    archs = list(space.enumerate())
    table = synthetic_table(failed={archs[0]: 1, archs[1]: 0})
    chosen = select_architectures(table, 14, seed=0)
    assert archs[0] not in {e.arch for e in chosen.entries} and archs[1] not in {e.arch for e in chosen.entries}
    with pytest.raises(UsageError, match="the table has 14 completed rows, fewer than --architectures 15"):
        select_architectures(table, 15, seed=0)
    with pytest.raises(UsageError, match=">= 2"):
        select_architectures(table, 1, seed=0)


# --- resume cache ------------------------------------------------------------------------------

def test_cache_round_trips_and_survives_a_torn_line(tmp_path):
    entries = synthetic_table().completed
    path = tmp_path / "runs.jsonl"
    cache = RunCache(path)
    first = _long(entries[0], (0.25, 0.5))
    cache.add(first)
    with path.open("a") as f:
        f.write('{"arch_hash": "abc", "recipe_ha')  # killed mid-write
    reopened = RunCache(path)
    assert reopened.unreadable == 1 and reopened.get(first.arch_hash, first.recipe_hash) == first
    second = _long(entries[1], (0.3, 0.6), error="ValueError: x")
    reopened.add(second)
    again = RunCache(path)
    assert again.unreadable == 1
    assert again.get(second.arch_hash, "r" * 16) == second and again.get(second.arch_hash, "other") is None
    # what a run reports now is what a rerun reads back: the stored (rounded) numbers
    unrounded = LongRun(entries[2].arch.hash, "r" * 16, (1 / 3,), (0.123456,), 9.87654, "cpu:test x1")
    stored = again.add(unrounded)
    assert stored == RunCache(path).get(unrounded.arch_hash, "r" * 16) != unrounded
    assert stored.val_accuracy == (0.3333,) and stored.epoch_s == (0.12,)


def test_a_run_that_raises_is_recorded_as_failed():
    table = _tiny_table()
    entry = table.completed[0]
    config = long_run_config(entry, long_recipe(table, 2), measure_settings(table))
    config["arch"] = {**config["arch"], "mixers": ["no_such_mixer"] * 4}
    run = train_long(config, "cpu")
    assert run.error and "no_such_mixer" in run.error and run.val_accuracy == ()


# --- the command -------------------------------------------------------------------------------

def _tiny_table(epochs: int = 1) -> BenchTable:
    """Three real mixerbench architectures with made-up proxy curves and a tiny recipe."""
    space = get_space("mixerbench")
    seeds = dict(space.seeds())
    names = ["CDFFormer-like", "all-DF", "LITv2-like"]
    entries = []
    for i, name in enumerate(names):
        base = synthetic_entry(seeds[name], curve=(0.2 + 0.1 * i,) * epochs)
        entries.append(dataclasses.replace(base, throughput=1000.0 - 100 * i))
    provenance = {"recipe": TINY_RECIPE, "measure": TINY_MEASURE, "complete": False,
                  "architectures": space.size(), "code_revision": "test", "device_kind": "cpu:test x1"}
    return BenchTable(space, entries, epochs, provenance)


def _write(table: BenchTable, path):
    path.write_text(json.dumps(table.to_dict()))
    return path


def test_long_recipe_is_the_table_recipe_at_factor_epochs_without_speed_limits():
    table = _tiny_table()
    long = long_recipe(table, 3)
    assert long.epochs == 3 and long.dataset == "glyphs:n=200" and long.batch_size == 32 and long.seed == 0
    measure = measure_settings(table)
    assert measure.max_latency_ms is None and measure.repeats == 2 and measure.target_res == 32


def test_real_long_runs_resume_from_the_cache(tmp_path, capsys, monkeypatch):
    # Spawned pool workers re-run the parent's __main__ file; in a pytest session that may be a
    # script an earlier test ran as __main__ (Streamlit's AppTest), not this benchmark's entry point.
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    table_path = _write(_tiny_table(), tmp_path / "table.json")
    out = tmp_path / "fidelity.json"
    common = ["--table", str(table_path), "--json", str(out), "--architectures", "3", "--factor", "2"]

    assert main([*common, "--workers", "1", "--limit", "1"]) == 0
    partial = json.loads(out.read_text())
    assert partial["long_runs"] | {"wall_s": 0} == {
        "completed": 1, "failed": 0, "pending": 2, "trained_now": 1, "wall_s": 0,
        "cache": str(cache_path(out)), "device_kinds": partial["long_runs"]["device_kinds"]}
    assert partial["kendall_tau"]["proxy_vs_long"] is None  # one pair: undefined

    assert main([*common, "--workers", "2"]) == 0
    report = json.loads(out.read_text())
    assert report["long_runs"]["trained_now"] == 2 and report["long_runs"]["pending"] == 0
    assert report["architectures"] == 3 and len(report["rows"]) == 3
    assert report["long_recipe"]["epochs"] == 2 and report["recipe"]["epochs"] == 1
    assert report["table"]["complete"] is False and report["table"]["code_revision"] == "test"
    for row in report["rows"]:
        assert len(row["long"]) == 2 and all(0 <= a <= 1 for a in row["long"]) and "error" not in row
    assert {r["mixers"][2] for r in report["rows"]} == {"dynamic_filter", "hilo"}
    assert set(report["kendall_tau"]) >= {"proxy_vs_long", "rung1_vs_proxy", "recorded_vs_long", "epoch_1_vs_long"}
    assert report["table_kendall_tau"]["rows"] == 3
    lines = cache_path(out).read_text().splitlines()
    assert len(lines) == 3 and len({json.loads(line)["arch_hash"] for line in lines}) == 3
    finals = [r["long"][-1] for r in report["rows"]]
    if len(set(finals)) > 1:  # the taus are those of the reported numbers
        expected = kendall_tau([r["proxy"][-1] for r in report["rows"]], finals).tau
        assert report["kendall_tau"]["proxy_vs_long"] == pytest.approx(expected, abs=1e-4)

    capsys.readouterr()
    assert main([*common, "--workers", "2"]) == 0  # all cached: nothing trains, same answer
    again = json.loads(out.read_text())
    assert again["long_runs"]["trained_now"] == 0 and again["rows"] == report["rows"]
    assert again["kendall_tau"] == report["kendall_tau"]
    assert "trained 0 long runs" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--architectures", "1"], "--architectures must be >= 2"),
    (["--architectures", "4"], "the table has 3 completed rows, fewer than --architectures 4"),
    (["--factor", "1"], "--factor must be >= 2"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--limit", "0"], "--limit must be >= 1"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    table_path = _write(_tiny_table(), tmp_path / "table.json")
    out = tmp_path / "fidelity.json"
    assert main(["--table", str(table_path), "--json", str(out), "--architectures", "3", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists() and not cache_path(out).exists()


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("{not json", "not valid JSON"),
    ('{"format": "mixerbench/0"}', "format must be"),
])
def test_bad_tables_exit_2_with_one_line(tmp_path, capsys, content, message):
    table_path = tmp_path / "table.json"
    if content is not None:
        table_path.write_text(content)
    assert main(["--table", str(table_path), "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: benchmark table") and message in err and err.count("\n") == 1
