"""End-to-end searches on Ray Tune (offline digits, a 4-stage toy space, seconds per trial).

All in-process searches share the session's one local Ray instance (``ray_local``: 2 CPUs,
2 fake GPUs).  The resume test runs ``nas search`` as a subprocess with its own Ray, kills it
with SIGKILL after a trial has finished, and resumes it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.search import SearchRequest, prepare_search, run_search
from nas.search.run import INTERRUPTED_ERROR, _local_device_kind
from nas.store import FEASIBLE_STATES, Measurement, open_store

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]
FAST = dict(dataset="digits", epochs=2, subset=200, warmup=1, repeats=3, throughput_batch=8, seed=0)


def write_space(path: Path, stage4_mhsa: dict | None = None) -> str:
    """Cheap mixers only; ``stage4_mhsa`` overrides the kwargs MHSA gets in stage 4."""
    mhsa = {"head_dim": 16}
    space = {
        "name": "toy", "target_res": 32, "proxy_res": 32,
        "stages": [
            {"mixer": ["sepconv", "dynamic_filter"], "depth": [1], "width": [16]},
            {"mixer": ["sepconv", "dynamic_filter"], "depth": [1], "width": [16, 32]},
            {"mixer": ["dynamic_filter", "mhsa"], "depth": [1, 2], "width": [32], "mixer_kwargs": {"mhsa": mhsa}},
            {"mixer": ["dynamic_filter", "mhsa"], "depth": [1], "width": [32],
             "mixer_kwargs": {"mhsa": stage4_mhsa or mhsa}},
        ],
        "seeds": [
            {"name": "CAFormer-like", "mixers": ["sepconv", "sepconv", "mhsa", "mhsa"], "depths": [1, 1, 1, 1],
             "dims": [16, 16, 32, 32]},
            {"name": "all-DF", "mixers": ["dynamic_filter"] * 4, "depths": [1, 1, 1, 1], "dims": [16, 16, 32, 32]},
        ],
    }
    path.write_text(json.dumps(space))
    return str(path)


def search(tmp_path: Path, space: str, budget: str, **options) -> tuple:
    request = SearchRequest(space=space, budget=budget, strategy="random",
                            db=f"sqlite:///{tmp_path / 'nas.db'}", **{**FAST, **options})
    summary = run_search(prepare_search(request), out=None)
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}")
    try:
        return summary, store.trials(search=summary.name), store.get_search(summary.name)
    finally:
        store.close()


def parse(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def max_overlap(trials: list[dict]) -> int:
    events = sorted([(parse(t.started_at), 1) for t in trials] + [(parse(t.finished_at), -1) for t in trials])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_fake_gpu_search_packs_trials_charges_gpu_time_and_survives_failures(ray_local, tmp_path):
    # MHSA in stage 4 builds and measures (eval mode) but raises as soon as it trains (dropout 2.0),
    # so the CAFormer-like seed fails after its measurement and the search must go on.
    space = write_space(tmp_path / "broken.json", stage4_mhsa={"head_dim": 16, "attn_drop": 2.0})
    summary, trials, stored = search(tmp_path, space, "0.3gpu-min", gpus_per_trial=0.5, cpus_per_trial=0.5,
                                     name="packed")
    assert summary.status == "finished" and summary.slots == 4 and stored.status == "finished"
    assert {"CAFormer-like", "all-DF"} <= {t.seed_name for t in trials[:4]}  # seeds in the first batch
    assert max_overlap(trials) == 4  # 0.5 GPU each on 2 fake GPUs

    by_seed = {t.seed_name: t for t in trials}
    failed = by_seed["CAFormer-like"]
    assert failed.status == "failed"
    assert "dropout probability has to be between 0 and 1" in failed.error  # RuntimeError or ValueError by op
    assert failed.throughput > 0  # measured before it failed in training
    feasible = [t for t in trials if t.status in FEASIBLE_STATES]
    assert len(feasible) >= 3 and by_seed["all-DF"] in feasible
    for t in feasible:
        assert t.device_kind.startswith("cpu:") and t.device_kind.endswith(" x1")  # no CUDA: CPU fallback
        assert Path(t.weights_path).is_file() and t.epochs_done >= 1 and t.accuracy > 0

    for t in trials:  # charged: wall time x 0.5 GPU, failed trial included
        wall_s = parse(t.finished_at) - parse(t.started_at)
        assert t.devices_held == 0.5
        assert t.device_hours * 3600 == pytest.approx(wall_s * 0.5, abs=0.25)
    charged = sum(t.device_hours for t in trials)
    assert stored.charged == pytest.approx(charged)
    budget, mean_trial, worst_trial = 0.3 / 60, charged / len(trials), max(t.device_hours for t in trials)
    assert charged + mean_trial > budget  # stopped because another average trial would not fit ...
    assert charged <= budget + 4 * worst_trial  # ... and overshot by at most the trials in flight
    assert not (tmp_path / "nas_artifacts" / "packed" / "tune").exists()


def test_earlier_results_are_reused_under_this_searchs_constraints(ray_local, tmp_path):
    """all-DF was trained before (same recipe, device kind and protocol): reused free, judged by this
    search's latency limit; CAFormer-like only failed before, so it is measured again."""
    space = write_space(tmp_path / "toy.json")
    request = SearchRequest(space=space, budget="2trials", strategy="random", db=f"sqlite:///{tmp_path / 'nas.db'}",
                            name="strict", max_latency_ms=1e-6, **FAST)
    prepared = prepare_search(request)
    seeds = dict(prepared.space.seeds())
    earlier = open_store(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    search_id = earlier.create_search("earlier", space="toy", space_description={}, config={},
                                      budget_kind="trials", budget_total=2, budget_text="2trials").id
    kind = _local_device_kind(prepared)
    protocol = {"img_size": 32, "latency_batch": 1, "throughput_batch": 8}
    for seed, status in (("all-DF", "completed"), ("CAFormer-like", "failed")):
        trial_id = earlier.start_trial(search_id, arch=seeds[seed].to_dict(), recipe=prepared.settings.recipe.to_dict())
        earlier.record_measurement(trial_id, Measurement(params=1, gmacs=0.1, latency_ms=3.0, throughput=900.0, protocol=protocol, device_kind=kind))
        earlier.record_epoch(trial_id, 1, dict(val_accuracy=0.5), best_accuracy=0.5)
        earlier.finish_trial(trial_id, status, device_hours=0.01)
    earlier.close()

    summary = run_search(prepared, out=None)
    store = open_store(f"sqlite:///{tmp_path / 'nas.db'}")
    trials = store.trials(search="strict")
    store.close()
    assert summary.status == "finished"
    (reused,) = [t for t in trials if t.reused_from is not None]
    assert reused.seed_name == "all-DF" and reused.reused_from == 1 and reused.device_hours == 0
    assert reused.status == "infeasible" and reused.error == "reused measurement: latency 3 ms > max_latency_ms 1e-06"
    trained = [t for t in trials if t.reused_from is None]
    assert len(trained) == 2 and "CAFormer-like" in {t.seed_name for t in trained}
    for t in trained:  # infeasible: measured, never trained, charged the measurement only
        assert t.status == "infeasible" and t.epochs_done == 0 and t.weights_path is None
        assert t.device_kind == kind and 0 < t.device_hours * 3600 < 60


def test_sigkill_then_resume_keeps_finished_trials(tmp_path):
    db = tmp_path / "nas.db"
    space = write_space(tmp_path / "toy.json")
    command = [sys.executable, "-m", "nas.cli", "search", "--space", space, "--budget", "4trials", "--db", str(db),
               "--name", "killed", "--strategy", "random", "--epochs", "2", "--subset", "200", "--warmup", "1",
               "--repeats", "3", "--throughput-batch", "8", "--no-asha", "--quiet"]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # its own process group: its Ray dies with it below
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not finished_count(db):
            time.sleep(0.5)
        assert finished_count(db) >= 1, "no trial finished within 60 s"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = trial_rows(db)
    done_before = {r["id"]: r for r in before if r["status"] != "running"}

    resumed = subprocess.run(command[:-1] + ["--resume", "killed"], cwd=REPO, capture_output=True, text=True,
                             timeout=150)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = trial_rows(db)
    for trial_id, row in done_before.items():  # finished trials untouched
        assert after[trial_id - 1] == row
    interrupted = [r for r in after if r["error"] == INTERRUPTED_ERROR]
    assert {r["id"] for r in interrupted} == {r["id"] for r in before if r["status"] == "running"}
    outcomes = [r for r in after if r["error"] != INTERRUPTED_ERROR]
    assert len(outcomes) == 4 and len({r["arch_hash"] for r in outcomes}) == 4  # nothing ran twice
    assert {r["arch_hash"] for r in interrupted} <= {r["arch_hash"] for r in outcomes}  # re-run after resume
    with sqlite3.connect(db) as con:
        status, charged = con.execute("SELECT status, charged FROM searches WHERE name='killed'").fetchone()
    assert status == "finished" and charged == 4
    assert "search 'killed' finished" in resumed.stdout


def trial_rows(db: Path) -> list[dict]:
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(
            "SELECT id, status, arch_hash, error, accuracy, device_hours, finished_at FROM trials ORDER BY id")]


def finished_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return sum(r["status"] in FEASIBLE_STATES for r in trial_rows(db))
    except sqlite3.OperationalError:  # schema not created yet
        return 0
