"""The test-only tabular trial mode (``nas.search.tabular``): a replay file answers exactly what the
evaluator answers, refuses what it cannot answer, and a simulated trial process stays free of torch."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nas.bench import TabularEvaluator
from nas.search.tabular import (ReplayBook, ReplayedTrialError, SimulatedTrial, replay_book, time_scale,
                                wait_for_pool, write_replay)
from nas.trial.measure_settings import MeasureSettings

from bench_fixture import synthetic_space, synthetic_table

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def replay(tmp_path):
    space = synthetic_space()
    archs = list(space.enumerate())
    table = synthetic_table(space, failed={archs[3]: 1, archs[5]: 0})
    measure = MeasureSettings(target_res=32, max_latency_ms=3.5)
    path = write_replay(TabularEvaluator(table, measure), tmp_path / "replay.sqlite")
    return path, TabularEvaluator(table, measure), measure, archs


def test_replay_sends_the_evaluators_reports_and_raises_recorded_errors(replay):
    path, evaluator, measure, archs = replay
    book = ReplayBook(path)
    for arch in archs:
        sent: list[dict] = []
        config = {"arch": arch.to_dict(), "measure": measure.to_dict()}
        steps = list(evaluator.reports(arch))
        if steps[-1].error is not None:
            with pytest.raises(ReplayedTrialError, match="synthetic failure"):
                book.run_trial(config, lambda result, weights: sent.append(result))
        else:
            book.run_trial(config, lambda result, weights: sent.append(result))
        assert sent == [s.result for s in steps if s.error is None]
        assert [s[0] for s in book.steps(arch.to_dict())] == [s.seconds for s in steps]
    assert any(not s.result.get("feasible", True) for a in archs for s in evaluator.reports(a))  # some infeasible


def test_replay_stops_when_the_report_says_so_and_sleeps_scaled_time(replay):
    path, _, measure, archs = replay
    book = ReplayBook(path, scale=0.01)
    sent: list[dict] = []
    started = time.monotonic()
    book.run_trial({"arch": archs[0].to_dict(), "measure": measure.to_dict()},
                   lambda result, weights: sent.append(result) or False)
    assert len(sent) == 1 and sent[0]["phase"] == "measure"
    assert time.monotonic() - started >= 0.01 * 2.0  # the fixture's 2 s measurement, scaled


def test_replay_refuses_other_measure_settings_unknown_architectures_and_other_files(replay, tmp_path):
    path, _, measure, archs = replay
    book = ReplayBook(path)
    other = MeasureSettings(target_res=32, max_latency_ms=9.0).to_dict()
    with pytest.raises(ValueError, match="written for measurement settings"):
        book.run_trial({"arch": archs[0].to_dict(), "measure": other}, lambda *a: None)
    unknown = {**archs[0].to_dict(), "dims": [99, 99, 99, 99]}
    with pytest.raises(ValueError, match="has no row in the replay file"):
        book.run_trial({"arch": unknown, "measure": measure.to_dict()}, lambda *a: None)
    with pytest.raises(ValueError, match="does not exist"):
        ReplayBook(tmp_path / "missing.sqlite")
    (tmp_path / "text.sqlite").write_text("not a database")
    with pytest.raises(ValueError, match="not a replay file"):
        ReplayBook(tmp_path / "text.sqlite")


def test_environment_switches():
    assert replay_book({}) is None
    assert time_scale({}) == 0.0 and time_scale({"MIXER_NAS_TIME_SCALE": "0.25"}) == 0.25
    for bad in ("-1", "inf", "fast"):
        with pytest.raises(ValueError, match="MIXER_NAS_TIME_SCALE"):
            time_scale({"MIXER_NAS_TIME_SCALE": bad})


def test_simulated_trials_lock_one_key_per_node_and_fake_gpu(replay):
    path, _, _, archs = replay
    trial = SimulatedTrial(ReplayBook(path), {"arch": archs[0].to_dict()}, node_id="n1", gpu_ids=["0", "3"],
                           trial_id="t", run="r")
    assert trial.lock_keys == ["sim-n1-gpu-0", "sim-n1-gpu-3"]
    cpu = SimulatedTrial(ReplayBook(path), {"arch": archs[0].to_dict()}, node_id="n1", gpu_ids=[], trial_id="t",
                         run="r")
    assert cpu.lock_keys == ["sim-n1-cpu"]


def test_warmup_waits_for_the_pool_then_lets_every_later_trial_through(tmp_path):
    env = {"MIXER_NAS_TABULAR_WARMUP": "2"}
    assert wait_for_pool("run-a", tmp_path, {}) == 0.0  # unset: no wait
    joined = threading.Event()

    def other_process() -> None:
        time.sleep(0.3)
        (tmp_path / "warmup-run-b").mkdir(parents=True, exist_ok=True)
        (tmp_path / "warmup-run-b" / "another-pid").touch()
        joined.set()

    threading.Thread(target=other_process).start()
    waited = wait_for_pool("run-b", tmp_path, env)
    assert joined.is_set() and waited >= 0.25
    assert wait_for_pool("run-b", tmp_path, env) == 0.0  # this process already joined run-b
    assert 0.0 < wait_for_pool("run-c", tmp_path, env, timeout_s=0.2) < 1.5  # nobody else: bounded


def test_a_simulated_trial_process_does_not_import_torch(tmp_path):
    code = ("import sys, nas.search.trainable, nas.search.tabular; "
            "print(sorted(m for m in ('torch', 'timm', 'backbones') if m in sys.modules))")
    env = {**os.environ, "MIXER_NAS_TABULAR": str(tmp_path / "replay.sqlite")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
