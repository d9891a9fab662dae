"""Issue 12, bad input that must be refused up front (exit 2, one line) without losing anything:
``nas export`` (items 2, 6), ``nas verify-export`` (8), in-memory ``--db`` for a search (7), a one-class
folder dataset and non-finite recipe numbers (9), and one-line messages for YAML and Ray (12).

Store, URL and dashboard cases are in ``test_reliability_store_access.py``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest
import timm
from PIL import Image
from safetensors import SafetensorError

import nas  # noqa: F401  (registers hybrid_metaformer)
import nas.export_target
from nas.cli import main
from nas.export import MAX_NUM_CLASSES, export_trial
from nas.export_target import ExportError
from nas.search.ray_messages import short_raylet_message, shorten_raylet_messages
from nas.store import Measurement, TrialStatus, open_store
from nas.trial.datasets import load_dataset
from nas.trial.recipe import ProxyRecipe
from nas.trial.runner import WEIGHTS_FILE, save_weights

ARCH = {"mixers": ["sepconv", "pooling", "sepconv", "pooling"], "depths": [1, 1, 1, 1], "dims": [8, 16, 16, 32],
        "mixer_kwargs": [{}, {}, {}, {}]}
MODEL_ARGS = {**ARCH, "img_size": 32, "num_classes": 10}
RECIPE = {"dataset": "digits", "epochs": 1, "img_size": 32}


def nas_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash: what must survive a refused or failed export."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def add_trial(store, search_id: int, root: Path, *, accuracy: float, throughput: float, weights: bool = True,
              status: TrialStatus = TrialStatus.COMPLETED) -> int:
    trial_id = store.start_trial(search_id, arch=ARCH, recipe={**RECIPE, "seed": int(throughput)},
                                 model_args=MODEL_ARGS, devices_held=1.0)
    store.record_measurement(trial_id, Measurement(params=1, gmacs=0.01, latency_ms=1000 / throughput,
                                                   throughput=throughput, device_kind="cpu:test"))
    path = root / "nas_artifacts" / "s" / f"t{trial_id}"
    if weights and status.feasible:
        path.mkdir(parents=True)
        save_weights(timm.create_model("hybrid_metaformer", **MODEL_ARGS), path)
    store.finish_trial(trial_id, status, accuracy=accuracy if status.feasible else None,
                       weights_path=str(path / WEIGHTS_FILE) if status.feasible else None)
    return trial_id


@pytest.fixture
def results(tmp_path):
    """``results/nas.db`` and ``results/nas_artifacts/``: search "s" (two front trials with weights, one
    infeasible) and search "broken" (a front trial whose weights file is gone)."""
    root = tmp_path / "results"
    root.mkdir()
    db = root / "nas.db"
    store = open_store(str(db), create=True)
    ids = {}
    for name in ("s", "broken"):
        search = store.create_search(name, space="test", space_description={}, config={}, budget_kind="trials",
                                     budget_total=3, budget_text="3trials")
        ids[name] = search.id
    fast = add_trial(store, ids["s"], root, accuracy=0.5, throughput=200)
    accurate = add_trial(store, ids["s"], root, accuracy=0.9, throughput=100)
    untrained = add_trial(store, ids["s"], root, accuracy=0.0, throughput=10, status=TrialStatus.INFEASIBLE)
    add_trial(store, ids["broken"], root, accuracy=0.9, throughput=100)
    add_trial(store, ids["broken"], root, accuracy=0.5, throughput=200, weights=False)
    store.close()
    yield {"root": root, "db": str(db), "fast": fast, "accurate": accurate, "untrained": untrained}


@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A directory of the user's own files that an export must not destroy."""
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work")
    (mine / "notes" / "todo.txt").write_text("keep me")
    return mine


def no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if p.name.startswith(".")], list(parent.iterdir())


# ------------------------------------------------------------------ 2: export never destroys


def test_force_export_of_a_trial_without_weights_keeps_the_users_files(capsys, results, user_dir):
    before = tree(user_dir)
    code, _, err = nas_cli(capsys, "export", str(results["untrained"]), "--out", str(user_dir), "--force",
                           "--db", results["db"])
    assert_one_line_error(code, err, "no stored weights", "--no-weights")
    assert tree(user_dir) == before  # the old code had already deleted everything here
    no_leftovers(user_dir.parent)


@pytest.mark.parametrize("target, what", [("db_dir", "the results database"), ("artifacts", "the search artifacts"),
                                          ("search_artifacts", "the weights of trial"),
                                          ("weights_dir", "the weights of trial")])
def test_export_refuses_a_target_holding_the_results(capsys, results, target, what):
    root = results["root"]
    out = {"db_dir": root, "artifacts": root / "nas_artifacts", "search_artifacts": root / "nas_artifacts" / "s",
           "weights_dir": root / "nas_artifacts" / "s" / f"t{results['fast']}"}[target]
    before = tree(root)
    code, _, err = nas_cli(capsys, "export", str(results["fast"]), "--out", str(out), "--force",
                           "--db", results["db"])
    assert_one_line_error(code, err, f"contains {what}", "choose another directory")
    assert tree(root) == before  # the old code deleted the DB (and still exited 0)
    store = open_store(results["db"])
    assert store.trial(results["fast"]).status == TrialStatus.COMPLETED
    store.close()


def test_export_refuses_to_replace_the_working_directory(capsys, monkeypatch, results, user_dir):
    monkeypatch.chdir(user_dir / "notes")
    before = tree(user_dir)
    for out in (".", str(user_dir)):
        code, _, err = nas_cli(capsys, "export", str(results["fast"]), "--out", out, "--force",
                               "--db", results["db"])
        assert_one_line_error(code, err, "contains the current directory")
    assert tree(user_dir) == before


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     SafetensorError("Error while serializing: I/O error: No space left on device")])
def test_failed_write_leaves_the_previous_export_in_place(capsys, results, tmp_path, failure):
    out = tmp_path / "model"
    assert nas_cli(capsys, "export", str(results["fast"]), "--out", str(out), "--db", results["db"])[0] == 0
    before = tree(out)

    def disk_full(*args, **kwargs):
        raise failure

    with mock.patch("nas.export.save_for_hf", disk_full):
        code, _, err = nas_cli(capsys, "export", str(results["accurate"]), "--out", str(out), "--force",
                               "--db", results["db"])
    assert_one_line_error(code, err, "cannot write --out", "No space left on device")
    assert tree(out) == before
    no_leftovers(tmp_path)


def test_force_replaces_only_once_the_new_export_is_complete(capsys, results, user_dir):
    code, out, err = nas_cli(capsys, "export", str(results["accurate"]), "--out", str(user_dir), "--force",
                             "--db", results["db"])
    assert code == 0, err
    assert sorted(p.name for p in user_dir.iterdir()) == ["README.md", "config.json", WEIGHTS_FILE]
    assert json.loads((user_dir / "config.json").read_text())["mixer_nas"]["id"] == results["accurate"]
    assert f"local-dir:{user_dir}" in (user_dir / "README.md").read_text()  # names the target, not the staging dir
    no_leftovers(user_dir.parent)


def test_pareto_export_is_all_or_nothing(capsys, results, user_dir):
    before = tree(user_dir)
    code, _, err = nas_cli(capsys, "export", "--pareto", "--search", "broken", "--out", str(user_dir), "--force",
                           "--db", results["db"])
    assert_one_line_error(code, err, "no stored weights")
    assert tree(user_dir) == before  # the old code wrote one trial, then stopped in a half-replaced directory
    code, _, err = nas_cli(capsys, "export", "--pareto", "--search", "s", "--out", str(user_dir), "--force",
                           "--db", results["db"])
    assert code == 0, err
    assert sorted(p.name for p in user_dir.iterdir()) == [f"trial-{results['fast']}", f"trial-{results['accurate']}"]
    for trial_dir in user_dir.iterdir():
        assert (trial_dir / WEIGHTS_FILE).is_file() and f"local-dir:{trial_dir}" in (trial_dir / "README.md").read_text()
    no_leftovers(user_dir.parent)


def test_non_empty_target_without_force_is_refused_and_kept(capsys, results, user_dir):
    before = tree(user_dir)
    code, _, err = nas_cli(capsys, "export", "--pareto", "--out", str(user_dir), "--db", results["db"])
    assert_one_line_error(code, err, "not empty", "--force")
    assert tree(user_dir) == before


# ------------------------------------------------------------------ 6: unwritable --out, absurd --num-classes


def test_export_into_a_directory_that_cannot_be_written_is_one_line(capsys, results):
    # /sys refuses new entries even to root (EPERM); the old code died with a PermissionError traceback.
    if not Path("/sys").is_dir() or _can_create_in("/sys"):
        pytest.skip("no directory here refuses writes to this user")
    code, _, err = nas_cli(capsys, "export", str(results["fast"]), "--out", "/sys/mixer-nas-export",
                           "--db", results["db"])
    assert_one_line_error(code, err, "cannot write --out", "/sys/mixer-nas-export")


def _can_create_in(directory: str) -> bool:
    try:
        os.rmdir(tempfile.mkdtemp(dir=directory))
        return True
    except OSError:
        return False


def test_export_with_a_read_only_parent_is_one_line(capsys, results, tmp_path):
    """The same with the permission error raised where the staging directory is created (simulated: as root,
    chmod 0555 does not stop writes)."""
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with mock.patch.object(nas.export_target.tempfile, "mkdtemp", refused):
        code, _, err = nas_cli(capsys, "export", str(results["fast"]), "--out", str(tmp_path / "ro" / "x"),
                               "--db", results["db"])
    assert_one_line_error(code, err, "does not exist")  # the parent is checked first
    (tmp_path / "ro").mkdir()
    with mock.patch.object(nas.export_target.tempfile, "mkdtemp", refused):
        code, _, err = nas_cli(capsys, "export", str(results["fast"]), "--out", str(tmp_path / "ro" / "x"),
                               "--db", results["db"])
    assert_one_line_error(code, err, "cannot write --out", "Permission denied")
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.parametrize("classes", ["2000000000", str(MAX_NUM_CLASSES + 1), "-1"])
def test_absurd_num_classes_is_refused_before_anything_is_built(capsys, results, tmp_path, classes):
    code, _, err = nas_cli(capsys, "export", str(results["fast"]), "--out", str(tmp_path / "x"),
                           "--num-classes", classes, "--db", results["db"])
    assert_one_line_error(code, err, "--num-classes must be between 0", classes)
    assert not (tmp_path / "x").exists()


def test_num_classes_zero_exports_a_headless_backbone(results, tmp_path):
    store = open_store(results["db"])
    result = export_trial(store, results["fast"], tmp_path / "features", num_classes=0)
    store.close()
    assert result.num_classes == 0
    assert json.loads((tmp_path / "features" / "config.json").read_text())["num_classes"] == 0


# ------------------------------------------------------------------ 8: verify-export without weights


def test_verify_export_fails_without_weights_unless_told(capsys, results, tmp_path):
    out = tmp_path / "model"
    assert nas_cli(capsys, "export", str(results["fast"]), "--out", str(out), "--db", results["db"])[0] == 0
    code, ok, _ = nas_cli(capsys, "verify-export", str(out))
    assert code == 0 and ok.startswith("ok: ") and "with weights" in ok
    (out / WEIGHTS_FILE).unlink()
    code, _, err = nas_cli(capsys, "verify-export", str(out))
    assert_one_line_error(code, err, WEIGHTS_FILE, "random weights", "--no-weights")  # the old code said "ok"
    code, ok, err = nas_cli(capsys, "verify-export", str(out), "--no-weights")
    assert code == 0 and "architecture only, random weights" in ok, err


def test_architecture_only_export_verifies_with_no_weights(capsys, results, tmp_path):
    out = tmp_path / "arch"
    code, _, err = nas_cli(capsys, "export", str(results["untrained"]), "--out", str(out), "--no-weights",
                           "--db", results["db"])
    assert code == 0, err
    assert nas_cli(capsys, "verify-export", str(out))[0] == 2
    assert nas_cli(capsys, "verify-export", str(out), "--no-weights")[0] == 0


# ------------------------------------------------------------------ 7: in-memory DB for a search


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true", ""])
def test_search_refuses_an_in_memory_database(capsys, tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    code, _, err = nas_cli(capsys, "search", "--space", "hybrid_metaformer_tiny", "--budget", "1trials",
                           "--db", url)
    assert_one_line_error(code, err, "in-memory database", "--db sqlite:///nas.db")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 9: degenerate data and numbers


def image_folder(root: Path, classes: list[str]) -> Path:
    for split in ("train", "val"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (40 * i, 80, 120)).save(root / split / name / f"{i}.png")
    return root


def test_one_class_folder_dataset_is_refused(capsys, tmp_path):
    data = image_folder(tmp_path / "data", ["cats"])
    with pytest.raises(ValueError, match="1 class .*cats.*at least 2"):
        load_dataset(f"folder:{data}", 32)
    code, _, err = nas_cli(capsys, "search", "--space", "hybrid_metaformer_tiny", "--budget", "1trials",
                           "--dataset", f"folder:{data}", "--db", str(tmp_path / "nas.db"))
    assert_one_line_error(code, err, "at least 2 class folders")
    assert not (tmp_path / "nas.db").exists()
    two = load_dataset(f"folder:{image_folder(tmp_path / 'two', ['cats', 'dogs'])}", 32)
    assert two.num_classes == 2


@pytest.mark.parametrize("flag", ["inf", "nan", "-inf"])
def test_non_finite_learning_rate_is_refused(capsys, tmp_path, flag):
    code, _, err = nas_cli(capsys, "search", "--space", "hybrid_metaformer_tiny", "--budget", "1trials",
                           f"--lr={flag}", "--db", str(tmp_path / "nas.db"))
    assert_one_line_error(code, err, "recipe.lr must be a finite number")
    assert not (tmp_path / "nas.db").exists()


@pytest.mark.parametrize("field", ["lr", "weight_decay", "warmup_epochs", "label_smoothing", "val_fraction"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_every_float_field_of_the_recipe_must_be_finite(field, value):
    with pytest.raises(ValueError, match=f"recipe.{field} must be a finite number"):
        ProxyRecipe(**{field: value})
    with pytest.raises(ValueError, match=f"recipe.{field} must be a finite number"):
        ProxyRecipe.from_dict({field: value})  # a recipe read back from a store or a config file


# ------------------------------------------------------------------ 12: one line, and true


def test_malformed_space_file_is_one_line_naming_the_place(capsys, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("name: x\nstages:\n  - mixers: [a, b\n    depth: 2\n")
    code, _, err = nas_cli(capsys, "search", "--space", str(space), "--budget", "1trials",
                           "--db", str(tmp_path / "nas.db"))
    assert_one_line_error(code, err, "not valid YAML at line 4, column 10", "expected ',' or ']'",
                          "started at line 3")


RAYLET_WORKER_DEATH = (  # as Ray 2.60 prints it on the driver for a worker killed with SIGKILL
    "A worker died or was killed while executing a task by an unexpected system error. To troubleshoot the "
    "problem, check the logs for the dead worker. Lease ID: 0000000001000000ffffffffffffffffffffffffffffffffffff"
    "ffffffffffff Worker ID: 04ee7140986982c6d8a8ced78db6cbc9b3630d789c4e0536453b8253 Node ID: 296b59d47d993b693a"
    "c2c7d731c3bc5bd8139daa84b25a99abc66c65 Worker IP address: 192.0.2.2 Worker port: 45517 Worker PID: 30375 "
    "Worker exit type: SYSTEM_ERROR Worker exit detail: The leased worker has unrecoverable failure. Worker is "
    "requested to be destroyed when it is returned. RPC error: Socket closed")


def test_raylet_worker_death_becomes_one_short_line():
    line = short_raylet_message(RAYLET_WORKER_DEATH)
    assert line == "a Ray worker process died (PID 30375: SYSTEM_ERROR, The leased worker has unrecoverable failure)"
    assert short_raylet_message("first\n  second  line\n") == "first second line"


@pytest.mark.ray
def test_raylet_message_for_a_killed_worker_reaches_the_driver_shortened(ray_local, capfd, monkeypatch):
    from ray._private import worker

    monkeypatch.setattr(worker, "print_to_stdstream", worker.print_to_stdstream)  # restored after the test
    shorten_raylet_messages()

    @ray_local.remote(max_retries=0, num_cpus=1)
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(ray_local.exceptions.WorkerCrashedError):
        ray_local.get(die.remote(), timeout=120)
    printed = ""
    deadline = time.monotonic() + 60
    while "worker process died" not in printed and time.monotonic() < deadline:
        time.sleep(0.5)
        printed += capfd.readouterr().out
    death = [line for line in printed.splitlines() if "worker process died" in line]
    assert death, printed
    assert all(len(line) < 250 and "Worker ID" not in line for line in death), death


def test_thread_clock_with_several_threads_per_trial_is_refused(capsys, tmp_path):
    code, _, err = nas_cli(capsys, "search", "--space", "hybrid_metaformer_tiny", "--budget", "1trials",
                           "--clock", "thread", "--cpus-per-trial", "2", "--db", str(tmp_path / "nas.db"))
    assert_one_line_error(code, err, "--clock thread times one CPU thread")
    assert not (tmp_path / "nas.db").exists()
