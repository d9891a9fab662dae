"""The store on PostgreSQL: "any SQLAlchemy URL works" checked against a real server.

A throwaway cluster is created with the machine's ``initdb``/``pg_ctl`` (run as the ``postgres``
user when the tests run as root, since PostgreSQL refuses root) on a Unix socket in a temp dir.
Skipped with the reason where PostgreSQL's server binaries or the psycopg driver are missing.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nas.front import pareto_front
from nas.store import Measurement, StoreError, TrialStatus, open_store

PORT = 55432


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg", reason="psycopg not installed")
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
    # Not under pytest's tmp dir: that one is private to the test user, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="mixer-nas-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        for p in (root, sock):
            os.chown(p, user.pw_uid, user.pw_gid)
    subprocess.run(_as_postgres(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                                 f"-p {PORT} -k {sock} -c listen_addresses=''", "start"]),
                   check=True, capture_output=True)
    try:
        subprocess.run(_as_postgres(["createdb", "-h", str(sock), "-p", str(PORT), "-U", "postgres", "nas"]),
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://postgres@/nas?host={sock}&port={PORT}"
    finally:
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_store_round_trip_on_postgres(pg_url):
    store = open_store(pg_url, create=True)
    search = store.create_search("pg", space="tiny", space_description={"stages": 4}, config={"strategy": "random"},
                                 budget_kind="cpu", budget_total=0.5, budget_text="30cpu-min")
    arch = {"mixers": ["sepconv", "sepconv", "mhsa", "mhsa"], "depths": [1, 1, 1, 1], "dims": [16, 32, 32, 64],
            "mixer_kwargs": [{}, {}, {}, {}]}
    recipe = {"dataset": "digits", "epochs": 1}
    ids = []
    for i, (acc, thr) in enumerate([(0.9, 100.0), (0.8, 300.0), (0.7, 200.0)]):
        tid = store.start_trial(search.id, arch={**arch, "depths": [1, 1, 1, i + 1]}, recipe=recipe,
                                devices_held=1, device_kind="cpu:test")
        store.record_measurement(tid, Measurement(params=1000 + i, gmacs=0.01, latency_ms=1.0, throughput=thr, protocol={"repeats": 3}, device_kind="cpu:test"))
        store.record_epoch(tid, 1, dict(val_accuracy=acc, train_loss=1.0), best_accuracy=acc)
        store.finish_trial(tid, TrialStatus.COMPLETED, device_hours=0.01)
        ids.append(tid)
    bad = store.start_trial(search.id, arch=arch, recipe=recipe)
    store.finish_trial(bad, TrialStatus.INFEASIBLE, device_hours=0.001)
    store.close()

    reopened = open_store(pg_url)  # schema version checked on an existing database
    trials = reopened.trials(search="pg")
    assert [t.status for t in trials] == ["completed"] * 3 + ["infeasible"]
    assert reopened.charged(search.id) == pytest.approx(0.031)
    assert [t.id for t in pareto_front(trials)] == [ids[0], ids[1]]
    assert reopened.trial(ids[0]).epochs[0].val_accuracy == pytest.approx(0.9)
    reuse = reopened.find_reusable({**arch, "depths": [1, 1, 1, 2]}, recipe, "cpu:test")
    assert reuse is not None and reuse.id == ids[1]
    with pytest.raises(StoreError, match="already exists"):
        reopened.create_search("pg", space="tiny", space_description={}, config={}, budget_kind="cpu",
                               budget_total=1, budget_text="1cpu-h")
    reopened.close()

    cli = subprocess.run([sys.executable, "-m", "nas.cli", "trials", "--db", pg_url, "--json"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert '"status": "infeasible"' in cli.stdout or '"status":"infeasible"' in cli.stdout
