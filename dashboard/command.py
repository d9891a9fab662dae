"""``nas dashboard``: check the database, then serve ``dashboard/app.py`` with Streamlit until Ctrl-C."""
from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from nas.errors import UsageError
from nas.store import DEFAULT_URL, normalise_url, open_store

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


def streamlit_command(url: str, host: str, port: int) -> list[str]:
    """Headless, local, no telemetry, no file watcher; an unexpected error shows its type on the page
    and its traceback only in this terminal; no "Deploy" button."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.showErrorDetails", "type",
            "--client.toolbarMode", "minimal", "--", "--db", url]


def _check_port_free(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: ignore TIME_WAIT leftovers
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None


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
    _check_port_free(args.host, args.port)
    signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` stops Streamlit too, like Ctrl-C
    proc = subprocess.Popen(streamlit_command(url, args.host, args.port))
    print(f"mixer-nas dashboard for {url}: http://{args.host}:{args.port}/  (Ctrl-C stops it)", flush=True)
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
