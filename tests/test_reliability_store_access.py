"""Issue 12, reaching the store: passwords never shown (item 4), a damaged SQLite file (5), a store on a
read-only filesystem (11), and one true line for database and ``--host`` errors (12).

Read-only access is checked twice: in-process with ``os.access`` mocked (tests run as root, and
chmod does not stop root), and for real in a child process that runs as root *without* the
capabilities that let root ignore file permissions (``setpriv --bounding-set -dac_override...``),
so a 0555 directory really cannot be written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import DB_ENV, command
from dashboard.panels import export_command
from nas.cli import main
from nas.store import Measurement, StoreError, TrialStatus, open_store
from nas.store.engine import display_url, error_line, sqlite_read_only_url

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
SECRET = "s3cr3t-pw"
ARCH = {"mixers": ["sepconv", "pooling"], "depths": [1, 1], "dims": [8, 16], "mixer_kwargs": [{}, {}]}


def nas_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "Background on this error" not in err and "sqlalche.me" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_store(path: Path, trials: int = 40) -> Path:
    store = open_store(str(path), create=True)
    search = store.create_search("alpha", space="mini", space_description={}, config={}, budget_kind="trials",
                                 budget_total=trials, budget_text=f"{trials}trials")
    for i in range(trials):
        arch = {**ARCH, "depths": [1, i + 1]}
        trial_id = store.start_trial(search.id, arch=arch, recipe={"dataset": "digits"}, devices_held=1.0)
        store.record_measurement(trial_id, Measurement(params=1000 + i, gmacs=0.01, latency_ms=2.0,
                                                       throughput=100.0 + i, device_kind="cpu:test"))
        store.finish_trial(trial_id, TrialStatus.COMPLETED, accuracy=0.5 + i / 100, device_hours=0.001)
    store.close()
    return path


@pytest.fixture
def db(tmp_path) -> Path:
    return make_store(tmp_path / "nas.db")


# ------------------------------------------------------------------ 4: secrets


def test_display_url_masks_the_password_of_any_url():
    assert display_url(f"postgresql+psycopg://nas:{SECRET}@db.example:5432/nas") == \
        "postgresql+psycopg://nas:***@db.example:5432/nas"
    assert display_url(f"postgresql://nas:{SECRET}@db.example:port/nas") == "postgresql://nas:***@db.example:port/nas"
    assert display_url("sqlite:////abs/nas.db") == "sqlite:////abs/nas.db"
    assert display_url("rel/nas.db") == "sqlite:///rel/nas.db"
    assert display_url("sqlite:///:memory:") == "sqlite:///:memory:"  # as given when there is nothing to hide
    assert display_url(f"postgresql://nas@db/nas?password={SECRET}&sslmode=require") == \
        "postgresql://nas@db/nas?password=***&sslmode=require"


@pytest.mark.parametrize("url, needle", [
    (f"postgresql+psycopg://nas:{SECRET}@127.0.0.1:{{port}}/nas", "Connection refused"),
    (f"mysql://nas:{SECRET}@127.0.0.1:{{port}}/nas", "cannot use database URL"),
    (f"postgresql://nas:{SECRET}@127.0.0.1:54x2/nas", "the port is not a number"),
])
@pytest.mark.parametrize("command_line", [["trials"], ["show", "1"], ["export", "1", "--out", "x"], ["search"]])
def test_no_error_shows_the_password(capsys, tmp_path, monkeypatch, url, needle, command_line):
    monkeypatch.chdir(tmp_path)
    url = url.format(port=closed_port())
    argv = [*command_line, "--db", url]
    if command_line == ["search"]:
        argv += ["--space", "hybrid_metaformer_tiny", "--budget", "1trials"]
    code, out, err = nas_cli(capsys, *argv)
    line = assert_one_line_error(code, err, needle, "nas:***@127.0.0.1")
    assert SECRET not in out + err
    assert "Is the server running" not in line  # psycopg's hint line: one line, the reason only
    assert "invalid literal for int()" not in line


def test_dashboard_child_gets_the_url_in_its_environment_not_argv(capsys, monkeypatch, db):
    url = f"postgresql+psycopg://nas:{SECRET}@db.example/nas"
    started = {}

    class FakeStreamlit:
        def __init__(self, args, env=None):
            started.update(args=args, env=env)

        def wait(self):
            return 0

    monkeypatch.setattr(command, "open_store", lambda u: mock.Mock())  # no server here: the check is mocked
    monkeypatch.setattr(command.subprocess, "Popen", FakeStreamlit)
    monkeypatch.setattr(command.signal, "signal", lambda *a: None)
    assert main(["dashboard", "--db", url, "--port", str(closed_port())]) == 0
    printed = capsys.readouterr().out
    assert SECRET not in " ".join(started["args"]) and SECRET not in printed  # `ps` and the terminal
    assert "nas:***@db.example" in printed
    assert started["env"][DB_ENV] == url and started["env"]["PATH"] == os.environ["PATH"]


def run_app(monkeypatch, url: str) -> AppTest:
    monkeypatch.setenv(DB_ENV, url)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def page_text(at: AppTest) -> str:
    parts = [e.value for kind in ("caption", "error", "warning", "info", "code", "markdown")
             for e in getattr(at, kind)]
    parts += [e.value for kind in ("caption", "error") for e in getattr(at.sidebar, kind)]
    return "\n".join(str(p) for p in parts)


def test_dashboard_page_never_shows_the_password(monkeypatch):
    url = f"postgresql+psycopg://nas:{SECRET}@127.0.0.1:{closed_port()}/nas"
    at = run_app(monkeypatch, url)
    text = page_text(at)
    assert "nas:***@127.0.0.1" in " ".join(c.value for c in at.sidebar.caption)  # was the full URL
    assert "Cannot open the results database" in at.error[0].value and "Connection refused" in at.error[0].value
    assert SECRET not in text
    assert SECRET not in export_command(3, url) and "nas:***@" in export_command(3, url)


# ------------------------------------------------------------------ 5: a damaged SQLite file


def damage(path: Path, where: str) -> None:
    """Overwrite the root page of the trials table (``data``) or the file header (``header``)."""
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:
        if where == "data":
            f.seek((root - 1) * page_size)
            f.write(b"\xff" * page_size)
        else:
            f.write(b"not a database!!")


@pytest.mark.parametrize("where, reason", [("data", "database disk image is malformed"),
                                           ("header", "file is not a database")])
@pytest.mark.parametrize("command_line", [["trials", "--json"], ["show", "3"], ["pareto"],
                                          ["export", "3", "--out", "OUT", "--no-weights"]])
def test_damaged_sqlite_file_is_one_line_and_untouched(capsys, tmp_path, db, where, reason, command_line):
    damage(db, where)
    before = digest(db)
    argv = [str(tmp_path / "exported") if a == "OUT" else a for a in command_line]
    code, out, err = nas_cli(capsys, *argv, "--db", str(db))
    assert_one_line_error(code, err, "is damaged", reason, str(db))  # was exit 1 and a DatabaseError traceback
    assert out == "" and digest(db) == before
    assert not (tmp_path / "exported").exists()


def test_damaged_database_on_the_dashboard_is_one_message(monkeypatch, db):
    damage(db, "data")
    at = run_app(monkeypatch, f"sqlite:///{db}")
    messages = [e.value for e in at.error] + [w.value for w in at.warning]
    assert any("is damaged" in m and "malformed" in m for m in messages), messages


def test_other_database_errors_are_one_line_without_sqlalchemy_background(capsys, db):
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE trials DROP COLUMN error")
    conn.close()
    code, _, err = nas_cli(capsys, "trials", "--db", str(db))
    assert_one_line_error(code, err, "no such column")


def test_error_line_keeps_the_reason_of_a_multi_line_message():
    class Wrapped(Exception):
        orig = RuntimeError("Multiple connection attempts failed. All failures were:\n- host: 'db', port: '5432': "
                            "connection refused\n\tIs the server running on that host?")
    assert error_line(Wrapped()) == ("Multiple connection attempts failed. All failures were: host: 'db', port: "
                                     "'5432': connection refused")


# ------------------------------------------------------------------ 11: read-only stores


def read_only_options(db: Path) -> dict | None:
    url = sqlite_read_only_url(db)
    if url is None:
        return None
    assert url.database == f"file:{db}"
    return dict(url.query)


def test_read_only_directory_opens_the_store_read_only_and_immutable(db, monkeypatch):
    """Simulated: ``os.access`` says nothing is writable (as root, chmod would not stop writes)."""
    with mock.patch("nas.store.engine.os.access", return_value=False):
        assert read_only_options(db) == {"mode": "ro", "immutable": "1", "uri": "true"}
        store = open_store(str(db))
        assert store.engine.url.query == {"mode": "ro", "immutable": "1", "uri": "true"}
        assert len(store.trials()) == 40
        with pytest.raises(StoreError, match="readonly database"):
            store.create_search("new", space="mini", space_description={}, config={}, budget_kind="trials",
                                budget_total=1, budget_text="1trials")
        store.close()
    Path(f"{db}-wal").write_bytes(b"")  # a WAL file: committed data may be there, immutable would miss it
    with mock.patch("nas.store.engine.os.access", return_value=False):
        assert read_only_options(db) == {"mode": "ro", "uri": "true"}
    with mock.patch("nas.store.engine.os.access", side_effect=lambda p, m: Path(p) != db):
        assert read_only_options(db) == {"mode": "ro", "uri": "true"}  # file read-only, dir not
    assert sqlite_read_only_url(db) is None  # writable: the normal WAL engine
    quoted = Path(db.parent / "with space#hash.db")  # "#" would end a SQLite URI filename unquoted
    shutil.copy(db, quoted)
    with mock.patch("nas.store.engine.os.access", return_value=False):
        assert len(open_store(str(quoted)).trials()) == 40


UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def unprivileged(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([*UNPRIVILEGED, *argv], cwd=REPO, capture_output=True, text=True, timeout=300)


def requires_unprivileged_child(directory: Path) -> None:
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run a child without CAP_DAC_OVERRIDE")
    probe = unprivileged(sys.executable, "-c", f"import os; print(os.access({str(directory)!r}, os.W_OK))")
    if probe.returncode != 0 or probe.stdout.strip() != "False":
        pytest.skip(f"could not drop the capabilities here: {probe.stderr.strip() or probe.stdout.strip()}")


@pytest.fixture
def read_only_dir():
    """A 0555 directory under a world-traversable parent (pytest's tmp dirs are 0700)."""
    import tempfile

    parent = Path(tempfile.mkdtemp(prefix="nas-ro-"))
    parent.chmod(0o755)
    yield parent
    parent.chmod(0o755)
    shutil.rmtree(parent, ignore_errors=True)


def test_wal_store_in_a_read_only_directory_is_readable(read_only_dir):
    """Real: a child that cannot write the directory reads the store (the old code: "attempt to write a
    readonly database", since SQLite must create ``nas.db-shm`` to read a WAL database)."""
    db = make_store(read_only_dir / "nas.db")
    assert not Path(f"{db}-wal").exists()
    read_only_dir.chmod(0o555)
    requires_unprivileged_child(read_only_dir)
    result = unprivileged(sys.executable, "-m", "nas.cli", "trials", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 40
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["nas.db"]


def test_live_wal_in_a_read_only_directory_is_read_with_its_newest_rows(read_only_dir):
    """Real: a writer holds the DB open (rows still in ``-wal``); the reader must see them, so it may not use
    ``immutable=1``, which ignores the WAL."""
    db = make_store(read_only_dir / "nas.db", trials=3)
    writer = open_store(str(db))
    writer.create_search("only-in-the-wal", space="mini", space_description={}, config={}, budget_kind="trials",
                         budget_total=1, budget_text="1trials")
    try:
        assert Path(f"{db}-wal").stat().st_size > 0
        read_only_dir.chmod(0o555)
        requires_unprivileged_child(read_only_dir)
        code = ("from nas.store import open_store; import sys; "
                f"print([s.name for s in open_store(sys.argv[1]).list_searches()])")
        result = unprivileged(sys.executable, "-c", code, str(db))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "['alpha', 'only-in-the-wal']"
    finally:
        writer.close()


# ------------------------------------------------------------------ 12: --host and --port say what is wrong


@pytest.mark.parametrize("host, needle", [("nohost.invalid", "is not an address or a known host name"),
                                          ("999.1.1.1", "is not an address or a known host name"),
                                          ("192.0.2.1", "cannot be bound here")])
def test_bad_dashboard_host_is_named_not_blamed_on_the_port(capsys, db, host, needle):
    code, _, err = nas_cli(capsys, "dashboard", "--db", str(db), "--host", host, "--port", str(closed_port()))
    line = assert_one_line_error(code, err, needle, host)
    assert "--port" not in line


def test_busy_dashboard_port_still_says_choose_another_port(capsys, db):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = nas_cli(capsys, "dashboard", "--db", str(db), "--port", str(port))
    assert_one_line_error(code, err, "the port is in use", "choose another --port")
