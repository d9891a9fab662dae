"""``nas trials/pareto/show`` on a hand-built store, and every ``nas search`` input error (no Ray).

Bad input must give exit 2, one ``error:`` line naming the problem, no traceback, and leave
the database byte-for-byte unchanged (or not create it).
"""
from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import main
from nas.store import Measurement, open_store
from search_spaces import Architecture

REPO = Path(__file__).resolve().parents[1]
RECIPE = {"dataset": "digits", "epochs": 2, "img_size": 32}
REQUIRED_KEYS = {"id", "search", "status", "arch", "accuracy", "throughput", "latency_ms", "params", "gmacs",
                 "device_hours"}


def arch(i: int) -> dict:
    return Architecture(("sepconv", "mhsa"), (1, i + 1), (16, 32)).to_dict()


def add_trial(store, search_id, i, status, acc=None, throughput=None):
    trial_id = store.start_trial(search_id, arch=arch(i), recipe=RECIPE, devices_held=1.0)
    if throughput is not None:
        store.record_measurement(trial_id, Measurement(params=100_000 + i, gmacs=0.01, latency_ms=1000 / throughput, throughput=throughput, device_kind="cpu:Test x1"))
    if acc is not None:
        store.record_epoch(trial_id, 1, dict(val_accuracy=acc - 0.1, train_loss=1.0), best_accuracy=acc - 0.1)
        store.record_epoch(trial_id, 2, dict(val_accuracy=acc, train_loss=0.5), best_accuracy=acc)
    store.finish_trial(trial_id, status, device_hours=0.001 * (i + 1),
                       error="ValueError: boom" if status == "failed" else None)
    return trial_id


@pytest.fixture
def db(tmp_path) -> Path:
    """Two searches; in "alpha" trials 1 and 3 form the front of completed trials, 2 (early-stopped) dominates 3
    when stopped trials are included, 4 failed, 5 infeasible."""
    path = tmp_path / "nas.db"
    store = open_store(f"sqlite:///{path}", create=True)
    for name in ("alpha", "beta"):
        store.create_search(name, space="mini", space_description={}, config={"recipe": RECIPE},
                            budget_kind="cpu-h", budget_total=1.0, budget_text="1cpu-h")
    alpha, beta = store.get_search("alpha").id, store.get_search("beta").id
    add_trial(store, alpha, 0, "completed", acc=0.9, throughput=1000)
    add_trial(store, alpha, 1, "stopped", acc=0.8, throughput=3000)
    add_trial(store, alpha, 2, "completed", acc=0.7, throughput=2000)
    add_trial(store, alpha, 3, "failed", throughput=500)
    add_trial(store, alpha, 4, "infeasible", throughput=10)
    add_trial(store, beta, 5, "completed", acc=0.95, throughput=100)
    store.close()
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ---------------------------------------------------------------------------------- reading


def test_trials_table_and_filters(capsys, db):
    code, out, _ = run_cli(capsys, "trials", "--db", str(db))
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["id", "search", "status"]
    assert len(lines) == 1 + 6
    code, out, _ = run_cli(capsys, "trials", "--db", str(db), "--search", "alpha", "--status", "completed", "--json")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [1, 3]
    assert all(REQUIRED_KEYS <= set(r) for r in rows)
    assert rows[0]["accuracy"] == 0.9 and rows[0]["throughput"] == 1000 and rows[0]["search"] == "alpha"


def test_pareto_defaults_to_newest_search_and_json_is_one_array(capsys, db):
    code, out, _ = run_cli(capsys, "pareto", "--db", str(db), "--search", "alpha", "--json")
    front = json.loads(out)
    assert code == 0 and [t["id"] for t in front] == [1, 3]  # completed trials only, sorted by throughput
    code, out, _ = run_cli(capsys, "pareto", "--db", str(db), "--search", "alpha", "--include-stopped", "--json")
    assert [t["id"] for t in json.loads(out)] == [1, 2]  # 3 dominated by the early-stopped 2
    code, out, _ = run_cli(capsys, "pareto", "--db", str(db), "--search", "alpha", "--include-stopped")
    lines = out.strip().splitlines()
    assert "completed and early-stopped trials): 2 trial(s)" in lines[0]
    header, stopped = lines[1].split(), lines[3].split()
    assert stopped[:3] == ["2", "stopped", "2"] and header[:3] == ["id", "status", "epochs"]
    code, out, _ = run_cli(capsys, "pareto", "--db", str(db))
    assert "search 'beta'" in out and "(accuracy vs throughput, completed trials)" in out
    assert out.strip().splitlines()[-1].split()[0] == "6"


def test_show_prints_one_trial_with_epochs(capsys, db):
    code, out, _ = run_cli(capsys, "show", "1", "--db", str(db), "--json")
    (trial,) = json.loads(out)
    assert REQUIRED_KEYS <= set(trial) and [e["val_accuracy"] for e in trial["epochs"]] == [0.8, 0.9]
    code, out, _ = run_cli(capsys, "show", "4", "--db", str(db))
    assert code == 0 and "failed" in out and "ValueError: boom" in out


@pytest.mark.parametrize("argv, needle", [
    (["show", "99"], "no trial 99"),
    (["trials", "--search", "nope"], "no search named 'nope' (known: alpha, beta)"),
    (["pareto", "--search", "nope"], "no search named 'nope'"),
])
def test_unknown_trial_or_search(capsys, db, argv, needle):
    before = digest(db)
    assert_one_line_error(*run_cli(capsys, *argv, "--db", str(db))[::2], needle)
    assert digest(db) == before


@pytest.mark.parametrize("command", [["trials"], ["pareto"], ["show", "1"]])
def test_missing_db_is_an_error_and_is_not_created(capsys, tmp_path, command):
    missing = tmp_path / "missing.db"
    assert_one_line_error(*run_cli(capsys, *command, "--db", str(missing))[::2], "does not exist")
    assert not missing.exists()


# ---------------------------------------------------------------------------------- search input errors


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GOOD = ["--space", "hybrid_metaformer_tiny", "--budget", "1cpu-min"]


@pytest.mark.parametrize("argv, needles", [
    (["--space", "nope", "--budget", "1cpu-min"], ["unknown search space 'nope'"]),
    (GOOD + ["--strategy", "greedy"], ["unknown strategy 'greedy'"]),
    (GOOD + ["--dataset", "imagenet"], ["unknown dataset 'imagenet'"]),
    (GOOD + ["--dataset", "folder:/nonexistent/data"], ["folder dataset", "/nonexistent/data"]),
    (["--space", "hybrid_metaformer_tiny", "--budget", "10 gpu-hours"], ["budget '10 gpu-hours' is malformed"]),
    (["--space", "hybrid_metaformer_tiny", "--budget=-1cpu-h"], ["budget '-1cpu-h' is malformed"]),
    (["--space", "hybrid_metaformer_tiny", "--budget", "0trials"], ["must be a positive"]),
    (["--space", "hybrid_metaformer_tiny"], ["--budget is required"]),
    (GOOD + ["--address", "127.0.0.1:{port}"], ["no Ray cluster reachable at 127.0.0.1:"]),
    (GOOD + ["--address", "ray://127.0.0.1:10001"], ["Ray Client addresses are not supported"]),
    (GOOD + ["--epochs", "0"], ["recipe.epochs must be >= 1"]),
    (GOOD + ["--gpus-per-trial", "1.5"], ["--gpus-per-trial must be a fraction"]),
    (["--space", "hybrid_metaformer_tiny", "--budget", "1gpu-h", "--gpus-per-trial", "0"], ["GPU-hours"]),
    (GOOD + ["--max-latency-ms", "-3"], ["--max-latency-ms must be > 0"]),
    (GOOD + ["--name", "bad name!"], ["search name 'bad name!'"]),
    (GOOD + ["--name", "alpha"], ["a search named 'alpha' already exists", "--resume alpha"]),
    (["--resume", "nope"], ["no search named 'nope'"]),
    (["--resume", "alpha", "--name", "beta"], ["disagree"]),
])
def test_search_input_errors_change_nothing(capsys, db, argv, needles):
    before = digest(db)
    argv = [a.replace("{port}", str(closed_port())) for a in argv]
    code, _, err = run_cli(capsys, "search", *argv, "--db", str(db), "--artifacts", str(db.parent / "art"))
    assert_one_line_error(code, err, *needles)
    assert digest(db) == before
    assert not (db.parent / "art").exists()


def test_search_refuses_unwritable_db_path_and_newer_schema(capsys, tmp_path, db):
    missing_dir = tmp_path / "no-such-dir" / "nas.db"
    code, _, err = run_cli(capsys, "search", *GOOD, "--db", str(missing_dir))
    assert_one_line_error(code, err, "does not exist")
    assert not missing_dir.parent.exists()

    with sqlite3.connect(db) as con:
        con.execute("UPDATE version_info SET schema_version = 99")
    before = digest(db)
    code, _, err = run_cli(capsys, "search", *GOOD, "--db", str(db))
    assert_one_line_error(code, err, "schema version 99, newer than")
    assert digest(db) == before


def test_resume_refuses_changed_settings(capsys, tmp_path):
    path = tmp_path / "nas.db"
    store = open_store(f"sqlite:///{path}", create=True)
    from search_spaces import get_space

    space = get_space("hybrid_metaformer_tiny")
    config = {"space": "hybrid_metaformer_tiny", "strategy": "random", "seed": 0, "asha": True,
              "recipe": {**RECIPE, "subset": 100}, "measure": {"target_res": 32}, "gpus_per_trial": 0.0,
              "cpus_per_trial": 1.0, "max_concurrent": None, "data_dir": None}
    store.create_search("old", space="hybrid_metaformer_tiny", space_description=space.describe(), config=config,
                        budget_kind="cpu-h", budget_total=1.0, budget_text="1cpu-h")
    store.close()
    before = digest(path)
    code, _, err = run_cli(capsys, "search", "--resume", "old", "--epochs", "5", "--strategy", "random",
                           "--db", str(path))
    assert_one_line_error(code, err, "recipe.epochs (stored 2, given 5)")
    code, _, err = run_cli(capsys, "search", "--resume", "old", "--budget", "10trials", "--db", str(path))
    assert_one_line_error(code, err, "same unit")
    assert digest(path) == before


def test_error_in_a_real_process_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nas.cli", "search", "--space", "nope", "--budget", "1trials",
                             "--db", str(tmp_path / "nas.db")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        "error: unknown search space 'nope'; known: hybrid_metaformer, hybrid_metaformer_tiny, mixerbench "
        "(or a path to a .yaml/.yml/.json file)"]
    assert "Traceback" not in result.stderr and not (tmp_path / "nas.db").exists()


@pytest.mark.parametrize("command", ["search", "trials", "pareto", "show"])
def test_help(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and f"usage: nas {command}" in capsys.readouterr().out
