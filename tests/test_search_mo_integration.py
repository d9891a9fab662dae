"""Real multi-objective searches end to end: ``nas search --strategy {mo-evolution,nsga2,motpe}`` on local
Ray (one subprocess each, with its own Ray), killed with SIGKILL once a trial has finished, then
resumed to the end of its budget; and the one-line errors of bad objective/strategy input.

The space is ``hybrid_metaformer_tiny`` with one seed (so the strategy itself proposes three of
the four trials), trained for one epoch on 200 digits.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main
from nas.search.run import INTERRUPTED_ERROR
from nas.store import FEASIBLE_STATES
from search_spaces import get_space

REPO = Path(__file__).resolve().parents[1]
FAST = ["--dataset", "digits", "--epochs", "1", "--subset", "200", "--warmup", "1", "--repeats", "3",
        "--throughput-batch", "8", "--quiet"]


def tiny_with_one_seed(path: Path) -> str:
    described = get_space("hybrid_metaformer_tiny").describe()
    described["seeds"] = described["seeds"][:1]
    path.write_text(json.dumps(described))
    return str(path)


def rows(db: Path) -> list[dict]:
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute(
            "SELECT id, status, arch_hash, seed_name, error, accuracy, latency_ms, throughput, finished_at "
            "FROM trials ORDER BY id")]


def finished(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return sum(r["status"] in FEASIBLE_STATES for r in rows(db))
    except sqlite3.OperationalError:  # schema not created yet
        return 0


@pytest.mark.ray
@pytest.mark.parametrize("strategy, extra", [
    ("mo-evolution", []),
    ("nsga2", ["--objective", "latency"]),
    ("motpe", ["--max-latency-ms", "1000"]),
])
def test_multi_objective_search_survives_sigkill_and_resumes(tmp_path, strategy, extra):
    db = tmp_path / "nas.db"
    command = [sys.executable, "-m", "nas.cli", "search", "--space", tiny_with_one_seed(tmp_path / "tiny.json"),
               "--budget", "4trials", "--db", str(db), "--name", "mo", "--strategy", strategy, *FAST, *extra]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # its own process group: its Ray dies with it below
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not finished(db) and first.poll() is None:
            time.sleep(0.5)
        assert finished(db) >= 1, "no trial finished within 180 s"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = rows(db)
    done_before = {r["id"]: r for r in before if r["status"] != "running"}

    resumed = subprocess.run(command[:-len(extra) or None] + ["--resume", "mo"], cwd=REPO, capture_output=True,
                             text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = rows(db)
    for trial_id, row in done_before.items():  # finished trials untouched
        assert after[trial_id - 1] == row
    outcomes = [r for r in after if r["error"] != INTERRUPTED_ERROR]
    assert len(outcomes) == 4 and len({r["arch_hash"] for r in outcomes}) == 4  # nothing ran twice
    assert sum(r["seed_name"] is None for r in outcomes) == 3  # the strategy proposed the rest
    assert all(r["status"] in FEASIBLE_STATES and r["accuracy"] > 0 and r["latency_ms"] > 0 for r in outcomes)
    with sqlite3.connect(db) as con:
        status, charged, config = con.execute("SELECT status, charged, config_json FROM searches").fetchone()
    assert status == "finished" and charged == 4
    config = json.loads(config)
    assert config["strategy"] == strategy
    assert config["objective"] == ("latency" if "latency" in extra else "throughput")
    assert config["measure"]["max_latency_ms"] == (1000.0 if "--max-latency-ms" in extra else None)


def test_bad_objective_and_limits_a_strategy_cannot_take_are_one_line_errors(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    common = ["search", "--space", "hybrid_metaformer_tiny", "--budget", "3trials", "--db", db]
    for argv, needle in (
            (["--objective", "fastest"], "error: unknown objective 'fastest'; choices: throughput, latency"),
            (["--strategy", "nni-tpe", "--max-latency-ms", "2"],
             "error: strategy 'nni-tpe' cannot take speed limits (--max-latency-ms/--min-throughput)"),
            (["--strategy", "nni-evolution", "--min-throughput", "100"],
             "error: strategy 'nni-evolution' cannot take speed limits")):
        code = main(common + argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith(needle), err
    assert not (tmp_path / "nas.db").exists()  # refused before anything was written
