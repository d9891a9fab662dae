"""The dashboard on a big store, in a real browser (Debian's chromium driven by playwright, as the
browser test does): time to the first chart, cost of a live refresh, and what the table ships.

* ``first_chart_s``: from ``page.goto`` to the Pareto chart drawn with every measured trial.
* ``refresh_s``: the search is marked running (a copy of the store, so the page refreshes itself
  every ``REFRESH_SECONDS``) and one new trial is written every refresh; per refresh, from the
  first websocket message of the refresh that brings the new trial to the chart showing it; the
  mean over ``REFRESHES`` refreshes.  ``refresh_bytes``: what the server sent per refresh.
* ``table_caption``: what the table says it shows (it pages: 100 rows at a time).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from dashboard.frames import chart_sample, trials_frame
from nas.store import Measurement, open_store

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
                 "--disable-extensions", "--no-first-run"]
REFRESHES = 5
JS_POINTS = """() => { const gd = document.querySelectorAll('.js-plotly-plot')[0];
    return gd && gd.data ? gd.data.filter(t => t.meta && t.meta.role === 'trials')
        .reduce((n, t) => n + (t.customdata || t.x || []).length, 0) : 0; }"""
JS_TRIAL_IDS = """() => { const gd = document.querySelectorAll('.js-plotly-plot')[0];
    return gd && gd.data ? gd.data.filter(t => t.meta && t.meta.role === 'trials')
        .flatMap(t => (t.customdata || []).map(c => c[0])) : []; }"""
JS_HAS_TRIAL = "(id) => (%s)().includes(id)" % JS_TRIAL_IDS
JS_WATCH = """() => { window.__plots = []; let last = null;
    setInterval(() => { const gd = document.querySelectorAll('.js-plotly-plot')[0];
        const now = gd && gd.data; if (now && now !== last) { last = now;
        window.__plots.push(performance.timeOrigin + performance.now()); } }, 20); }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(url: str, log: Path) -> Iterator[str]:
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "dashboard", "--db", url, "--port", str(port)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={k: v for k, v in os.environ.items() if not k.startswith("MIXER_NAS_TABULAR")})
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    if resp.read() == b"ok":
                        break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"nas dashboard did not come up:\n{log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def measure_dashboard(db: Path, search: str) -> dict[str, Any]:
    """Open ``search`` of the store at ``db`` (copied first) in chromium; see the module docstring."""
    executable = shutil.which("chromium")
    if executable is None:
        return {"skipped": "chromium not installed (apt-get install chromium)"}
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="scale-dashboard-"))
    try:
        copy = work / "nas.db"
        _copy_store(db, copy)
        url = f"sqlite:///{copy}"
        store = open_store(url)
        trials = store.trials(search=search)
        drawn = chart_sample(trials_frame(trials))  # what the page draws by default (the same code)
        measured = int((drawn["throughput"] > 0).sum())
        result: dict[str, Any] = {"trials": len(trials), "plotted": measured}
        with serve(url, work / "dashboard.log") as address, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                result["first_chart_s"] = _first_chart(browser, address, search, measured)
                result["first_chart_warm_s"] = _first_chart(browser, address, search, measured)
                store.update_search(search, status="running")
                result.update(_refreshes(browser, address, search, store, measured))
            finally:
                browser.close()
        store.close()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _copy_store(source: Path, target: Path) -> None:
    import sqlite3

    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _first_chart(browser, address: str, search: str, measured: int) -> float:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    started = time.monotonic()
    page.goto(f"{address}?search={search}")
    page.wait_for_function(f"() => ({JS_POINTS})() >= {measured}", timeout=180_000, polling=100)
    elapsed = time.monotonic() - started
    page.close()
    return elapsed


def _refreshes(browser, address: str, search: str, store, measured: int) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    frames: list[tuple[float, int]] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(
        (time.time() * 1000.0, len(payload) if payload else 0))))
    page.goto(f"{address}?search={search}")
    page.wait_for_function(f"() => ({JS_POINTS})() >= {measured}", timeout=180_000, polling=100)
    table_caption = page.locator("text=trials shown").first.inner_text()
    page.evaluate(JS_WATCH)
    search_id = store.get_search(search).id
    costs, sizes = [], []
    for i in range(REFRESHES):
        frames.clear()
        page.evaluate("() => { window.__plots = []; }")
        trial = store.start_trial(search_id, arch={"mixers": ["pooling"] * 4, "depths": [1] * 4, "dims": [16 + i] * 4},
                                  recipe={"epochs": 3})
        store.record_measurement(trial, Measurement(params=1, gmacs=0.01, latency_ms=1.0, throughput=1000.0 + i))
        page.wait_for_function(JS_HAS_TRIAL, arg=trial, timeout=60_000, polling=50)
        page.wait_for_timeout(300)  # the rest of the page settles
        plots = page.evaluate("() => window.__plots")
        burst = _last_burst([f for f in frames if plots and f[0] <= max(plots)])
        if burst and plots:
            costs.append((max(plots) - burst[0][0]) / 1000.0)
            sizes.append(sum(n for _, n in burst))
    page.close()
    return {"refresh_s": sum(costs) / len(costs) if costs else None, "refresh_s_max": max(costs, default=None),
            "refresh_bytes": sum(sizes) / len(sizes) if sizes else None, "refreshes_measured": len(costs),
            "table_caption": table_caption}


def _last_burst(frames: list[tuple[float, int]], gap_ms: float = 500.0) -> list[tuple[float, int]]:
    """The last run of websocket messages without a pause longer than ``gap_ms`` (one refresh)."""
    burst: list[tuple[float, int]] = []
    for frame in sorted(frames):
        if burst and frame[0] - burst[-1][0] > gap_ms:
            burst = []
        burst.append(frame)
    return burst


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.scale.dashboard DB SEARCH [--json FILE]``: measure a kept store again and put
    the figures under ``dashboard`` in the benchmark's JSON."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale.dashboard", description=main.__doc__)
    parser.add_argument("db", type=Path)
    parser.add_argument("search")
    parser.add_argument("--json", type=Path, help="merge into this benchmark JSON (key 'dashboard')")
    args = parser.parse_args(argv)
    result = measure_dashboard(args.db, args.search)
    print(json.dumps(result, indent=1))
    if args.json:
        report = json.loads(args.json.read_text()) if args.json.exists() else {}
        report["dashboard"] = result
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
