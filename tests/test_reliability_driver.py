"""Driver reliability without Ray: one driver per search (leases), schema migration, stored names
and paths, failure streaks, in-flight trials on stop, SIGTERM, the Ray watchdog's sweep, and the
per-user device lock directory.

Each test reproduces a case of issue 12 that the driver got wrong before (see the docstrings).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from nas.budget import BudgetTracker, parse_budget
from nas.cli import main as nas_main
from nas.errors import UsageError
from nas.search.callback import RecorderStopper
from nas.search.device_lock import LOCK_DIR_ENV, DeviceLock, lock_dir
from nas.search.ownership import LeaseKeeper, lease_is_stale, pid_alive, this_driver
from nas.search.paths import inside, tune_dir
from nas.search.prepare import check_search_name
from nas.search.ray_watchdog import descendants
from nas.search.recorder import INTERRUPTED_ERROR, SearchRecorder, failure_signature
from nas.search.report import SearchSummary, format_summary
from nas.search.signals import sigterm_like_sigint
from nas.store import SCHEMA_VERSION, DriverId, DriverLease, SearchBusyError, SearchStatus, StoreError, open_store
from nas.store.models import Base, utcnow
from nas.trial.measure_settings import MeasureSettings
from nas.trial.recipe import ProxyRecipe
from search_spaces import Architecture

REPO = Path(__file__).resolve().parents[1]
RECIPE = {"dataset": "digits", "epochs": 2, "img_size": 32}
MEASURE = {"target_res": 32, "latency_batch": 1, "throughput_batch": 32, "max_latency_ms": None,
           "min_throughput": None}
HOST = socket.gethostname()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'nas.db'}", create=True)
    yield s
    s.close()


@pytest.fixture
def sleeper():
    """A live process that is not us (a driver still running on this host)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def new_search(store, name="s1", budget="1cpu-h", driver: DriverId | None = None):
    b = parse_budget(budget)
    store.create_search(name, space="mini", space_description={"name": "mini"},
                        config={"recipe": RECIPE, "measure": MEASURE}, budget_kind=b.unit, budget_total=b.amount,
                        budget_text=b.text, device_kind="cpu:Test x1", driver=driver)
    return store.get_search(name), BudgetTracker(b)


def recorder_for(store, tmp_path, name="s1", lease=None, max_failures=0, driver=None):
    search, tracker = new_search(store, name, driver=driver)
    clock = Clock()
    rec = SearchRecorder(store, search, tracker, artifacts_dir=tmp_path / "artifacts",
                         recipe=ProxyRecipe.from_dict(RECIPE), measure=MeasureSettings(**MEASURE),
                         gpus_per_trial=0.0, cpus_per_trial=1.0, device_kind="cpu:Test x1", out=None, clock=clock,
                         lease=lease, max_consecutive_failures=max_failures)
    return rec, clock


def config_for(i: int) -> dict:
    return {"arch": Architecture(("sepconv", "mhsa"), (1, i + 1), (16, 32)).to_dict(),
            "recipe": ProxyRecipe.from_dict(RECIPE).to_dict(), "seed_name": None}


def lease_at(host=HOST, pid=1, age_s=0.0) -> DriverLease:
    beat = utcnow() - dt.timedelta(seconds=age_s)
    return DriverLease(driver_id="old", host=host, pid=pid, since=beat, heartbeat=beat)


# ------------------------------------------------------------------ 1. one driver per search


def test_second_driver_is_refused_naming_the_owner(store, sleeper):
    """Issue 12.1: a second driver on a running search was not refused; both wrecked it."""
    owner = DriverId("first", HOST, sleeper.pid)
    search, _ = new_search(store, driver=owner)
    with pytest.raises(SearchBusyError) as refused:
        store.claim_search("s1", this_driver(), lease_is_stale)
    message = str(refused.value)
    assert f"host {HOST}, pid {sleeper.pid}, since " in message and "--resume s1" in message
    assert "\n" not in message
    assert store.search_lease("s1").driver_id == "first"


def test_cli_resume_of_a_search_another_driver_runs_exits_2(tmp_path, sleeper, capsys):
    """Issue 12.1 as the user saw it: `nas search --resume d1` while d1 runs must exit 2 naming the owner."""
    db = f"sqlite:///{tmp_path / 'd.db'}"
    s = open_store(db, create=True)
    new_search(s, name="d1", driver=DriverId("first", HOST, sleeper.pid))
    s.close()
    assert nas_main(["search", "--resume", "d1", "--db", db]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: search 'd1' is being run by another driver") and "\n" not in err
    assert f"pid {sleeper.pid}" in err and f"host {HOST}" in err and "since " in err


@pytest.mark.parametrize("host, pid, age_s, stale", [
    (HOST, "dead", 0.0, True),          # SIGKILLed driver on this host: stale at once
    (HOST, "alive", 0.0, False),        # running here
    (HOST, "alive", 3600.0, True),      # pid alive but silent for an hour: reused pid or frozen driver
    ("elsewhere", "alive", 5.0, False),  # another host, heartbeat fresh
    ("elsewhere", "dead", 5.0, False),  # another host: its pids say nothing here
    ("elsewhere", "alive", 3600.0, True),  # another host, heartbeats missed
])
def test_lease_staleness_rule(sleeper, host, pid, age_s, stale):
    lease = lease_at(host, sleeper.pid if pid == "alive" else dead_pid(), age_s)
    assert lease_is_stale(lease, host=HOST) is stale


def test_dead_drivers_lease_is_taken_over_and_the_search_marked_running(store):
    """Resume after a SIGKILL: the dead driver's lease (same host, pid gone) is taken over at once."""
    gone = DriverId("killed", HOST, dead_pid())
    search, _ = new_search(store, driver=gone)
    store.update_search("s1", status=SearchStatus.INTERRUPTED)
    me = this_driver()
    claimed, replaced = store.claim_search("s1", me, lease_is_stale, budget_text="2cpu-h", budget_total=2.0)
    assert replaced.driver_id == "killed" and replaced.pid == gone.pid
    assert claimed.status == "running" and claimed.budget_text == "2cpu-h"
    assert store.search_lease("s1").driver_id == me.driver_id


def test_a_lease_renewed_between_read_and_takeover_is_not_stolen(store, tmp_path):
    """Compare-and-swap: if the owner renews while a second driver decides it is stale, the second loses."""
    owner = DriverId("first", "elsewhere", 1)
    search, _ = new_search(store, driver=owner)
    other = open_store(f"sqlite:///{tmp_path / 'nas.db'}")

    def stale_but_renewed_meanwhile(lease):
        assert other.renew_lease(search.id, "first")  # the owner's heartbeat lands now
        return True

    with pytest.raises(SearchBusyError, match="host elsewhere, pid 1"):
        store.claim_search("s1", this_driver(), stale_but_renewed_meanwhile)
    other.close()
    assert store.search_lease("s1").driver_id == "first"


def test_lease_keeper_renews_at_most_every_interval_and_notices_a_takeover(store):
    me = this_driver()
    search, _ = new_search(store, driver=me)
    clock = Clock()
    keeper = LeaseKeeper(store, search.id, me, clock=clock, renew_s=10.0)
    first = store.search_lease("s1").heartbeat
    clock.now += 5
    assert keeper.beat() and store.search_lease("s1").heartbeat == first  # not due yet: no write
    clock.now += 6
    assert keeper.beat() and store.search_lease("s1").heartbeat > first
    store.claim_search("s1", DriverId("usurper", HOST, 1), lambda lease: True)
    clock.now += 11
    assert not keeper.beat() and keeper.lost
    assert not keeper.release(status=SearchStatus.FINISHED)  # the new owner's status stands
    assert store.get_search("s1").status == "running" and store.search_lease("s1").driver_id == "usurper"


def test_recorder_keeps_the_lease_on_tune_steps_and_writes_and_releases_it(store, tmp_path):
    me = this_driver()
    search, tracker = new_search(store, driver=me)
    clock = Clock()
    keeper = LeaseKeeper(store, search.id, me, clock=clock, renew_s=10.0)
    rec = SearchRecorder(store, search, tracker, artifacts_dir=tmp_path / "a", recipe=ProxyRecipe.from_dict(RECIPE),
                         measure=MeasureSettings(**MEASURE), gpus_per_trial=0.0, cpus_per_trial=1.0,
                         device_kind="cpu:Test x1", out=None, clock=clock, lease=keeper)
    beats = []
    store_renew = store.renew_lease
    store.renew_lease = lambda *a: beats.append(clock.now) or store_renew(*a)
    rec.heartbeat()  # a Tune step, not due
    clock.now += 10
    rec.heartbeat()  # due
    clock.now += 10
    rec.trial_started("t1", config_for(0))  # a store write, due
    clock.now += 1
    rec.trial_result("t1", {"phase": "other"})  # not due
    assert beats == [1010.0, 1020.0]
    rec.finish(SearchStatus.INTERRUPTED)
    assert store.search_lease("s1") is None and store.get_search("s1").status == "interrupted"


def test_lost_lease_stops_the_run_and_writes_nothing_more(store, tmp_path):
    me = this_driver()
    rec, clock = recorder_for(store, tmp_path, driver=me)
    rec.lease = LeaseKeeper(store, rec.search.id, me, clock=clock, renew_s=1.0)
    rec.trial_started("t1", config_for(0))
    store.claim_search("s1", DriverId("usurper", "elsewhere", 7), lambda lease: True)
    clock.now += 2
    rec.heartbeat()
    assert rec.stop_reason.startswith("another driver took this search over (host elsewhere, pid 7")
    assert RecorderStopper(rec).stop_all()
    rec.finish(SearchStatus.INTERRUPTED)
    assert store.trial(1).status == "running"  # the new owner records it (as interrupted) on its resume
    assert store.get_search("s1").status == "running"


# ------------------------------------------------------------------ 1. schema migration


def write_schema_1_store(path: Path) -> None:
    """A store as schema 1 wrote it: today's tables minus ``search_leases``, version 1, one search, two trials."""
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine, tables=[t for t in Base.metadata.sorted_tables if t.name != "search_leases"])
    engine.dispose()
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO version_info (id, schema_version, library_version) VALUES (1, 1, '0.1.0')")
        con.execute("INSERT INTO searches (id, name, space, space_json, config_json, budget_kind, budget_total, "
                    "budget_text, charged, status, created_at, updated_at) VALUES (1, 'old', 'toy', '{}', '{}', "
                    "'trials', 4, '4trials', 2, 'interrupted', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
        for number, status, acc in ((0, "completed", 0.5), (1, "running", None)):
            con.execute("INSERT INTO trials (search_id, number, arch_json, arch_hash, recipe_json, recipe_hash, "
                        "status, accuracy, epochs_done, devices_held, device_hours, started_at) VALUES "
                        "(1, ?, '{}', 'h', '{}', 'r', ?, ?, 2, 1, 0.01, '2026-01-01 00:00:00')",
                        (number, status, acc))


def test_schema_1_store_is_migrated_in_place_with_its_results_intact(tmp_path):
    """A store written before leases existed (schema 1) used to be refused; it is upgraded on open."""
    path = tmp_path / "old.db"
    write_schema_1_store(path)
    store = open_store(f"sqlite:///{path}")
    try:
        (search,) = store.list_searches()
        assert (search.name, search.status, search.charged, search.budget_text) == ("old", "interrupted", 2, "4trials")
        trials = store.trials(search="old")
        assert [(t.number, t.status, t.accuracy) for t in trials] == [(0, "completed", 0.5), (1, "running", None)]
        assert store.search_lease("old") is None
        claimed, _ = store.claim_search("old", this_driver(), lease_is_stale)  # the new table works
        assert claimed.status == "running"
    finally:
        store.close()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT schema_version FROM version_info").fetchone() == (SCHEMA_VERSION,)
    open_store(f"sqlite:///{path}").close()  # opening again: nothing left to migrate


def test_schema_1_store_that_cannot_be_upgraded_is_still_readable(tmp_path, monkeypatch):
    """A read-only schema-1 store: readers work; a search on it is refused in one line."""
    import nas.store.engine as engine
    from nas.store.migrations import MigrationError

    def read_only(*args):
        raise MigrationError("attempt to write a readonly database")

    path = tmp_path / "old.db"
    write_schema_1_store(path)
    monkeypatch.setattr(engine, "migrate", read_only)
    store = open_store(f"sqlite:///{path}")
    try:
        assert [t.status for t in store.trials(search="old")] == ["completed", "running"]
        with pytest.raises(StoreError, match="old schema version 1 and could not be upgraded"):
            store.search_lease("old")
    finally:
        store.close()


# ------------------------------------------------------------------ 3. stored names and paths


def test_names_and_paths_built_from_stored_values_stay_inside_their_root(tmp_path):
    root = tmp_path / "artifacts"
    root.mkdir()
    assert tune_dir(root, "s1") == (root / "s1" / "tune").resolve()
    for bad in ("../../victim", "..", "a/b", "", ".hidden"):
        with pytest.raises(UsageError, match="search name"):
            check_search_name(bad)
    with pytest.raises(UsageError, match="outside"):
        inside(root, "..", "victim")
    (tmp_path / "victim").mkdir()
    (root / "planted").symlink_to(tmp_path / "victim")
    with pytest.raises(UsageError, match="outside"):
        tune_dir(root, "planted")


def test_recorder_refuses_a_stored_search_name_that_escapes_the_artifacts_dir(store, tmp_path):
    """Issue 12.3: weights were written to ARTIFACTS/<stored name>, e.g. ../../victim."""
    search, tracker = new_search(store, name="../../victim")
    with pytest.raises(UsageError, match="search name '../../victim'"):
        SearchRecorder(store, search, tracker, artifacts_dir=tmp_path / "a", recipe=ProxyRecipe.from_dict(RECIPE),
                       measure=MeasureSettings(**MEASURE), gpus_per_trial=0.0, cpus_per_trial=1.0,
                       device_kind=None, out=None)


def toy_space(path: Path) -> str:
    path.write_text(json.dumps({
        "name": "toy", "target_res": 32, "proxy_res": 32,
        "stages": [{"mixer": ["sepconv"], "depth": [1], "width": [16]},
                   {"mixer": ["sepconv", "dynamic_filter"], "depth": [1], "width": [16, 32]},
                   {"mixer": ["sepconv", "dynamic_filter"], "depth": [1], "width": [32]},
                   {"mixer": ["dynamic_filter"], "depth": [1], "width": [32]}],
        "seeds": []}))
    return str(path)


def stored_search(tmp_path: Path, name: str) -> str:
    """A DB holding a real (resumable) search called ``name``; returns its URL."""
    from nas.search import SearchRequest, prepare_search

    db = f"sqlite:///{tmp_path / 'nas.db'}"
    prepared = prepare_search(SearchRequest(space=toy_space(tmp_path / "toy.json"), budget="2trials", name="x",
                                            strategy="random", db=db, artifacts=str(tmp_path / "scratch")))
    store = open_store(db, create=True)
    store.create_search(name, space=prepared.settings.space, space_description=prepared.space.describe(),
                        config=prepared.stored_config(), budget_kind="trials", budget_total=2, budget_text="2trials")
    store.update_search(name, status=SearchStatus.INTERRUPTED)
    store.close()
    return db


@pytest.mark.parametrize("plant", ["name", "symlink"])
def test_resume_never_deletes_outside_the_artifacts_dir(tmp_path, capsys, plant):
    """Issue 12.3: a stored name ``../../victim`` (or ARTIFACTS/<name> a symlink to elsewhere) made
    ``nas search --resume`` delete ``victim/tune``; now refused up front, exit 2, one line."""
    victim = tmp_path / "victim"
    (victim / "tune").mkdir(parents=True)
    (victim / "tune" / "precious.txt").write_text("keep me")
    artifacts = tmp_path / "work" / "a" / "b"
    artifacts.mkdir(parents=True)
    name = "../../victim" if plant == "name" else "planted"
    if plant == "symlink":
        (artifacts / "planted").symlink_to(victim)
    cwd = os.getcwd()
    os.chdir(tmp_path / "work")
    try:
        db = stored_search(tmp_path, name)
        rc = nas_main(["search", "--resume", name, "--db", db, "--artifacts", "a/b"])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err
    assert ("search name '../../victim'" in err) if plant == "name" else ("outside" in err)
    assert (victim / "tune" / "precious.txt").read_text() == "keep me"


# ------------------------------------------------------------------ 9. failure streaks


def test_failure_signature_ignores_file_names_and_numbers():
    a = "UnidentifiedImageError: cannot identify image file '/data/train/cat/12.jpg'"
    b = "UnidentifiedImageError: cannot identify image file '/data/train/dog/7.jpg'"
    assert failure_signature(a) == failure_signature(b)
    assert failure_signature(a) != failure_signature("RuntimeError: CUDA out of memory")


def test_search_stops_after_n_consecutive_trials_fail_the_same_way(store, tmp_path):
    """Issue 12.9: every trial failed on corrupt images and the search went on to spend its budget."""
    rec, clock = recorder_for(store, tmp_path, max_failures=3)
    stopper = RecorderStopper(rec)
    error = "UnidentifiedImageError: cannot identify image file '/d/train/a/{}.png'"
    for i in range(2):
        rec.trial_failed(f"t{i}", config_for(i), error.format(i))
    rec.trial_failed("t2", config_for(2), "RuntimeError: something else")  # another error: streak restarts
    rec.trial_started("t3", config_for(3))
    rec.trial_completed("t3", None)  # a trial that ended: streak restarts
    for i in range(4, 6):
        rec.trial_failed(f"t{i}", config_for(i), error.format(i))
        assert rec.stop_reason is None and not stopper.stop_all()
    rec.trial_failed("t6", config_for(6), error.format(6))
    assert stopper.stop_all()
    assert rec.stop_reason.startswith("the last 3 trials failed with the same error (UnidentifiedImageError")
    summary = SearchSummary(name="s1", status=SearchStatus.INTERRUPTED, charged="0", wall_s=1, slots=1, trial_s=1,
                            stop_reason=rec.stop_reason)
    text = format_summary(summary, resume_hint="nas search --resume s1")
    assert "stopped early: the last 3 trials failed" in text and "continue with: nas search --resume s1" in text


def test_failure_limit_zero_never_stops(store, tmp_path):
    rec, _ = recorder_for(store, tmp_path, max_failures=0)
    for i in range(10):
        rec.trial_failed(f"t{i}", config_for(i), "OSError: broken")
    assert rec.stop_reason is None


def test_negative_failure_limit_is_a_usage_error(tmp_path, capsys):
    rc = nas_main(["search", "--space", toy_space(tmp_path / "toy.json"), "--budget", "2trials",
                   "--db", f"sqlite:///{tmp_path / 'n.db'}", "--max-consecutive-failures", "-1"])
    assert rc == 2 and "--max-consecutive-failures must be >= 0" in capsys.readouterr().err


# ------------------------------------------------------------------ 10. stopping


def test_in_flight_trials_are_recorded_interrupted_when_the_run_ends(store, tmp_path):
    """Issue 12.10: after Ctrl+C, trials in flight stayed ``running`` until a resume."""
    rec, clock = recorder_for(store, tmp_path)
    rec.trial_started("t1", config_for(1))
    clock.now += 30
    rec.trial_result("t1", {"phase": "epoch", "epoch": 1, "val_accuracy": 0.4})
    clock.now += 6
    rec.finish(SearchStatus.INTERRUPTED)
    trial = store.trial(1)
    assert trial.status == "failed" and trial.error == INTERRUPTED_ERROR and trial.accuracy == 0.4
    assert trial.device_hours == pytest.approx(36 / 3600)  # charged to the stop
    assert store.get_search("s1").status == "interrupted"
    assert store.get_search("s1").charged == pytest.approx(36 / 3600)


def test_sigterm_is_handled_like_sigint_while_a_search_runs():
    """Issue 12.10: SIGTERM hit Ray's handler (sys.exit mid-Tune-step, native abort, exit 134)."""
    seen = []
    previous_int = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        with sigterm_like_sigint():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert seen == [signal.SIGINT]
        assert signal.getsignal(signal.SIGTERM) == previous_term
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with pytest.raises(KeyboardInterrupt), sigterm_like_sigint():  # nobody listens to SIGINT: still stops
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, previous_int)


# ------------------------------------------------------------------ 13. the Ray watchdog's sweep


def test_watchdog_kills_the_whole_tree_below_its_roots_when_the_driver_goes(tmp_path):
    """The sweep itself, without Ray: a root with children and a grandchild re-parented away
    (like Ray's agents once the raylet is gone) are all killed when the watchdog's stdin closes."""
    tree = subprocess.Popen(["sh", "-c", "sleep 300 & (sleep 300 & wait) & wait"], start_new_session=True)
    watchdog = None
    try:
        deadline = time.monotonic() + 10
        while len(descendants([tree.pid])) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        family = descendants([tree.pid])
        assert len(family) >= 4
        watchdog = subprocess.Popen([sys.executable, str(REPO / "nas" / "search" / "ray_watchdog.py"), str(tree.pid)],
                                    stdin=subprocess.PIPE, start_new_session=True)
        time.sleep(1.5)  # one look at the tree
        watchdog.stdin.close()  # the driver is gone
        watchdog.wait(timeout=20)
        tree.wait(timeout=20)
        deadline = time.monotonic() + 10
        while any(pid_alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in family if pid_alive(pid)]
    finally:
        for pid in descendants([tree.pid]):
            os.kill(pid, signal.SIGKILL)
        if watchdog is not None and watchdog.poll() is None:
            watchdog.kill()


# ------------------------------------------------------------------ 14. device lock directory


def test_lock_dir_is_per_user_private_and_configurable(tmp_path, monkeypatch):
    """Issue 12.14: every user shared /tmp/mixer-nas-device-locks (they could block or spoof each other)."""
    monkeypatch.delenv(LOCK_DIR_ENV, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    default = lock_dir()
    assert default == tmp_path / f"mixer-nas-device-locks-{os.getuid()}"
    assert default.stat().st_mode & 0o777 == 0o700
    mine = tmp_path / "mine"
    monkeypatch.setenv(LOCK_DIR_ENV, str(mine))
    assert lock_dir() == mine
    lock = DeviceLock(["cpu"])
    lock.acquire_exclusive()
    lock.close()
    assert (mine / "cpu.lock").exists()


def foreign_dir(tmp_path: Path) -> Path:
    """A directory owned by another user."""
    if os.getuid() != 0:
        return Path("/")
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 54321, 54321)
    return d


def test_lock_dir_owned_by_someone_else_or_open_to_others_is_refused(tmp_path, monkeypatch):
    theirs = foreign_dir(tmp_path)
    with pytest.raises(UsageError, match=r"belongs to uid \d+, not to you"):
        lock_dir(theirs)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UsageError, match="writable by other users"):
        lock_dir(shared)
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(UsageError, match="not a directory"):
        lock_dir(link)


def test_search_with_a_foreign_lock_dir_exits_2_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(LOCK_DIR_ENV, str(foreign_dir(tmp_path)))
    rc = nas_main(["search", "--space", toy_space(tmp_path / "toy.json"), "--budget", "2trials",
                   "--db", f"sqlite:///{tmp_path / 'n.db'}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: device lock directory") and "\n" not in err
    assert not (tmp_path / "n.db").exists()
