"""The scale simulation, small: ``python -m benchmarks.scale`` with 100 trials on a simulated pool of
2 nodes x 2 fake GPUs, the driver SIGKILLed halfway and resumed.

It runs the real ``nas search`` (Tune, searcher, scheduler, budget, store callback, device locks)
with trials answered from a synthetic MixerBench table, in a subprocess with its own Ray cluster,
so it never meets the session's ``ray_local`` instance.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[1]


def test_100_trials_on_a_simulated_pool_with_a_killed_driver(tmp_path):
    out = tmp_path / "scale.json"
    cmd = [sys.executable, "-m", "benchmarks.scale", "--sizes", "100", "--nodes", "2", "--gpus-per-node", "2",
           "--depths", "1,2", "--widths", "16", "--time-scale", "0.002", "--max-minutes", "12", "--no-dashboard",
           "--json", str(out), "--work", str(tmp_path / "work"), "--keep"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads(out.read_text())
    run = report["runs"][0]
    assert run["completed_run"] and not run["stopped_by_time_limit"]
    assert run["fault"] == "kill_driver" and [d["killed"] for d in run["drivers"]] == [True, False]
    # every trial the pool began has an outcome in the store: none lost, the interrupted ones re-run
    assert run["lost"] == 0
    assert run["rerun"] == run["interrupted"] and run["trials"] == 100 + run["interrupted"]
    assert run["statuses"].get("running", 0) == 0
    assert run["in_flight_peak"] <= 4
    # budget: what the driver charged is what the trials held, up to Tune's latency per trial and
    # the time the killed trials ran after their last report
    assert abs(run["charged_minus_device_s_per_trial"]) < 5.0
    assert run["driver_ms_per_trial"] > 0 and run["store_write_ms_p50"] > 0 and run["rss_mb"] > 0
    assert report["faults"]["driver_killed"]["lost"] == 0
    # the trial processes answered from the table: their ground-truth log names every stored trial
    assert run["trials_begun_by_workers"] >= run["trials"]
