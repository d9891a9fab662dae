"""Driver reliability with Ray: signals to a running ``nas search`` process, its Ray processes after
a SIGKILL, and a search whose every trial fails the same way (issue 12, items 9, 10 and 13).

The signal tests run ``nas search`` as a subprocess with its own local Ray (tens of seconds
each on a loaded machine); the failure-streak test runs in-process on the session's Ray.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main as nas_main
from nas.search.ray_watchdog import descendants, start_time
from nas.search.run import INTERRUPTED_ERROR
from nas.store import open_store

from test_reliability_driver import toy_space

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[1]
FAST = ["--strategy", "random", "--subset", "200", "--warmup", "1", "--repeats", "3", "--throughput-batch", "8",
        "--no-asha"]


def search_command(tmp_path: Path, name: str, epochs: int = 3) -> list[str]:
    return [sys.executable, "-m", "nas.cli", "search", "--space", toy_space(tmp_path / "toy.json"),
            "--budget", "4trials", "--db", str(tmp_path / "nas.db"), "--name", name, "--epochs", str(epochs),
            *FAST, "--quiet"]


def rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


def trials_running(db: Path) -> bool:
    return bool(rows(db, "SELECT 1 FROM trials WHERE status = 'running' AND epochs_done >= 1"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_records_in_flight_trials_and_hints_resume(tmp_path, signum):
    """Issue 12.10: SIGTERM ended the driver with a native abort (exit 134) and no resume hint;
    after SIGINT the trials in flight stayed ``running`` until a resume."""
    db = tmp_path / "nas.db"
    driver = subprocess.Popen(search_command(tmp_path, "stopped", epochs=20), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: trials_running(db), 120, "no trial trained an epoch")
        driver.send_signal(signum)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 1, (driver.returncode, err[-2000:])
    assert "Fatal Python error" not in err and "Traceback" not in err
    assert "search 'stopped' interrupted" in out
    hint = out.split("continue with: ", 1)[1].splitlines()[0]
    assert hint.startswith("nas search --resume stopped --db ") and hint.endswith(str(db))
    statuses = rows(db, "SELECT status, error FROM trials")
    assert statuses and not [s for s, _ in statuses if s == "running"]
    assert (("failed", INTERRUPTED_ERROR)) in statuses
    assert rows(db, "SELECT status FROM searches") == [("interrupted",)]
    assert rows(db, "SELECT * FROM search_leases") == []  # released: --resume may start at once


def test_sigkilled_driver_takes_its_local_ray_with_it(tmp_path):
    """Issue 12.13: after a driver SIGKILL, Ray's agents and workers lingered for 20-80 s."""
    db = tmp_path / "nas.db"
    driver = subprocess.Popen(search_command(tmp_path, "killed", epochs=20), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    family: dict[int, int] = {}
    try:
        wait_for(lambda: trials_running(db), 120, "no trial trained an epoch")
        family = {pid: t for pid, t in descendants([driver.pid]).items() if pid != driver.pid}
        assert len(family) >= 4  # GCS, raylet, agents, a worker (and the watchdog)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        survivors = lambda: [pid for pid, t in family.items() if start_time(pid) == t]  # noqa: E731
        deadline = time.monotonic() + 15  # generous for a loaded machine; Ray alone takes 20-80 s
        while survivors() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not survivors(), [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in survivors()]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        for pid, started in family.items():  # never leave strays on a shared machine
            if start_time(pid) == started:
                os.kill(pid, signal.SIGKILL)


def corrupt_folder_dataset(root: Path) -> str:
    """Two classes of unreadable image files (timm's loader skips a few bad files, not all of them)."""
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                (folder / f"{i}.png").write_bytes(b"not an image " * (i + 1))
    return f"folder:{root}"


def test_search_whose_trials_all_fail_the_same_way_stops_resumably(ray_local, tmp_path, capsys):
    """Issue 12.9: with unreadable images every trial failed and the search spent its whole budget, exit 0."""
    db = f"sqlite:///{tmp_path / 'nas.db'}"
    argv = ["search", "--space", toy_space(tmp_path / "toy.json"), "--budget", "20trials", "--db", db,
            "--name", "corrupt", "--dataset", corrupt_folder_dataset(tmp_path / "data"), "--epochs", "1",
            "--max-consecutive-failures", "2", "--cpus-per-trial", "1", *FAST, "--quiet"]
    assert nas_main(argv) == 1
    out = capsys.readouterr().out
    assert "stopped early: the last 2 trials failed with the same error" in out
    assert "continue with: nas search --resume corrupt" in out
    store = open_store(db)
    try:
        trials = store.trials(search="corrupt")
        failed = [t for t in trials if t.error != INTERRUPTED_ERROR]
        assert len(failed) >= 2 and all(t.status == "failed" for t in trials)
        assert len(trials) <= 4  # stopped after the streak (plus trials in flight), not the budget's 20
        assert store.get_search("corrupt").status == "interrupted" and store.search_lease("corrupt") is None
    finally:
        store.close()
