"""``nas dashboard``: check the database, then serve ``dashboard/app.py`` with Streamlit until Ctrl-C."""
from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from backbones import NO_MODELS_ENV
from dashboard import DB_ENV
from nas.errors import UsageError
from nas.store import DEFAULT_URL, normalise_url, open_store
from nas.store.engine import display_url

APP = Path(__file__).with_name("app.py")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard", help="serve the live Pareto-front dashboard for a results database",
        description="Serve the Streamlit dashboard (Pareto front, trials, hypervolume) for a results database. "
                    "It refreshes itself while a search is running.")
    parser.add_argument("--db", default=DEFAULT_URL,
                        help=f"results database URL or SQLite path (default {DEFAULT_URL})")
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    parser.set_defaults(func=run)


def streamlit_command(host: str, port: int) -> list[str]:
    """Headless, local, no telemetry, no file watcher; an unexpected error shows its type on the page
    and its traceback only in this terminal; no "Deploy" button.  The database URL is not here: it
    travels in the child's environment (``streamlit_env``), out of sight of ``ps``."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.showErrorDetails", "type",
            "--client.toolbarMode", "minimal"]


def streamlit_env(url: str) -> dict[str, str]:
    """The Streamlit process's environment: the database URL, and no model code (``NO_MODELS_ENV``: the
    page only reads the store, and importing torch and timm would cost its first load seconds)."""
    return {**os.environ, DB_ENV: url, NO_MODELS_ENV: "1"}


def check_listen_address(host: str, port: int) -> None:
    """Bind once as the server will, so a bad --host or a busy --port is one line before Streamlit starts."""
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise UsageError(f"--host {host!r} is not an address or a known host name ({reason})") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: ignore TIME_WAIT leftovers
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"cannot listen on {host}:{port}: the port is in use; choose another --port") from None
            if exc.errno == errno.EACCES and port < 1024:
                raise UsageError(f"cannot listen on {host}:{port}: ports below 1024 need privileges; choose "
                                 f"another --port") from None
            raise UsageError(f"cannot listen on {host}:{port}: --host {host!r} cannot be bound here "
                             f"({exc.strerror}); use an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None


def absolute_url(url: str) -> str:
    """Make a relative SQLite path absolute so the URL means the same file from any directory."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return url
    return parsed.set(database=str(Path(parsed.database).expanduser().resolve())).render_as_string(
        hide_password=False)


def run(args: argparse.Namespace) -> int:
    open_store(args.db).close()  # a missing or foreign database fails here, as one line, before Streamlit starts
    url = absolute_url(args.db)
    check_listen_address(args.host, args.port)
    signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` stops Streamlit too, like Ctrl-C
    proc = subprocess.Popen(streamlit_command(args.host, args.port), env=streamlit_env(url))
    print(f"mixer-nas dashboard for {display_url(url)}: http://{args.host}:{args.port}/  (Ctrl-C stops it)",
          flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
