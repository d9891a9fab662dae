"""``nas dashboard`` in a real chromium (Debian's, driven by PyPI playwright; no browser download).

The figure is read back from the DOM (``.js-plotly-plot`` → ``data``) and compared with the store:
every measured trial plotted once, the highlighted front equal to ``nas.pareto.pareto_front``.
A click on a point must open that trial; a trial written while the page is open must appear
without a page reload.  Screenshots land in the test's tmp dir and in /tmp for people to look at.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from nas.front import pareto_front
from nas.store import Measurement, open_store

from dashboard_fixture import DEVICE, PROTOCOL, RECIPE, build_fixture_db

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = Path("/tmp/dashboard-screenshot.png")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
                 "--disable-extensions", "--no-first-run"]
JS_TRACES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')[0].data, t => ({
    name: t.name, role: t.meta ? t.meta.role : null, ids: (t.customdata || []).map(c => c[0])}))"""
JS_POINT_PIXEL = """([trace, point]) => {
    const gd = document.querySelectorAll('.js-plotly-plot')[0], t = gd._fullData[trace];
    const xa = gd._fullLayout[t.xaxis.replace('x', 'xaxis')], ya = gd._fullLayout[t.yaxis.replace('y', 'yaxis')];
    const box = gd.getBoundingClientRect();
    return [box.left + xa._offset + xa.c2p(t.x[point]), box.top + ya._offset + ya.c2p(t.y[point])]; }"""
JS_POINT_COUNT = """() => document.querySelectorAll('.js-plotly-plot')[0].data
    .filter(t => t.meta && t.meta.role === 'trials').reduce((n, t) => n + t.customdata.length, 0)"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(url: str, log: Path) -> Iterator[str]:
    """``nas dashboard --db URL --port <free>`` as a subprocess; yields the page address once healthy."""
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "dashboard", "--db", url, "--port", str(port)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"nas dashboard exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    if resp.read() == b"ok":
                        break
            if time.monotonic() > deadline:
                pytest.fail(f"nas dashboard not healthy after 180 s:\n{log.read_text()}")
            time.sleep(0.5)
        assert f"http://127.0.0.1:{port}/" in log.read_text()
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGTERM)  # `nas dashboard` stops its Streamlit child on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in the session (normally nothing)


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("dash_browser")
    url = build_fixture_db(tmp / "nas.db")
    with serve_dashboard(url, tmp / "dashboard.log") as address:
        yield url, address


def open_page(browser, address: str, search: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{address}?search={search}")
    page.wait_for_selector(".js-plotly-plot", timeout=90_000)
    page.wait_for_selector(f'h2:has-text("Search {search}")', timeout=30_000)
    return page


def check_chart_against_store(page, url: str, search: str) -> list[dict]:
    """Plotted trials and the highlighted front equal the store's; returns the figure's traces."""
    trials = open_store(url).trials(search=search)
    traces = page.evaluate(JS_TRACES)
    plotted = [i for t in traces if t["role"] == "trials" for i in t["ids"]]
    assert sorted(plotted) == sorted(t.id for t in trials if (t.throughput or 0) > 0)
    front = next((t["ids"] for t in traces if t["role"] == "front"), [])
    assert front == [t.id for t in pareto_front(trials)]
    return traces


def click_front_point_and_check_detail(page, traces: list[dict], index: int) -> int:
    trace = next(i for i, t in enumerate(traces) if t["role"] == "front")
    trial_id = traces[trace]["ids"][index]
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    x, y = page.evaluate(JS_POINT_PIXEL, [trace, index])
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_selector(f'h3:has-text("Trial {trial_id} ·")', timeout=60_000)
    page.wait_for_selector(f'code:has-text("nas export {trial_id} --out")', timeout=30_000)
    page.mouse.move(0, 0)  # drop the hover label before any screenshot
    return trial_id


def full_screenshot(page, path: Path) -> None:
    """Streamlit scrolls inside its main block, so grow the viewport to the content before the shot."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(height + 40, 6000)})
    page.wait_for_timeout(2000)
    page.screenshot(path=str(path), full_page=True)


def test_chart_matches_store_and_a_click_opens_the_trial(browser, fixture_server, tmp_path):
    url, address = fixture_server
    page = open_page(browser, address, "hybrid-demo")
    traces = check_chart_against_store(page, url, "hybrid-demo")
    assert {t["name"] for t in traces} >= {"seed paper's hand design", "failed", "infeasible (over a limit)"}
    trial_id = click_front_point_and_check_detail(page, traces, 1)
    assert page.locator("h3", has_text=f"Trial {trial_id} ·").is_visible()
    full_screenshot(page, tmp_path / "dashboard.png")
    shutil.copy(tmp_path / "dashboard.png", SCREENSHOT)
    page.close()


def test_running_search_updates_without_a_page_reload(browser, fixture_server):
    url, address = fixture_server
    page = open_page(browser, address, "tight-latency")
    page.evaluate("() => { window.__sameDocument = true; }")
    before = page.evaluate(JS_POINT_COUNT)
    store = open_store(url)
    search = store.get_search("tight-latency")
    arch = {"mixers": ["pooling", "pooling", "sepconv", "hilo"], "depths": [2, 2, 4, 2], "dims": [32, 64, 128, 192]}
    tid = store.start_trial(search.id, arch=arch, recipe=RECIPE, device_kind=DEVICE)
    store.record_measurement(tid, Measurement(params=1_500_000, gmacs=0.1, latency_ms=3.0, throughput=3000.0, protocol=PROTOCOL, device_kind=DEVICE))
    page.wait_for_function(f"() => ({JS_POINT_COUNT})() === {before + 1}", timeout=30_000)
    assert page.evaluate("() => window.__sameDocument === true")
    page.close()


@pytest.fixture(scope="module")
def real_search(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """A DB written by a real tiny ``nas search`` (3 trials, 1 epoch, digits); fails loudly if the search does."""
    tmp = tmp_path_factory.mktemp("real_search")
    url = f"sqlite:///{tmp / 'nas.db'}"
    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", "hybrid_metaformer_tiny", "--budget", "3trials",
           "--epochs", "1", "--subset", "200", "--warmup", "2", "--repeats", "5", "--name", "tiny-real",
           "--db", url, "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nas search failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return url, "tiny-real", tmp


@pytest.mark.slow
def test_dashboard_on_a_real_tiny_search(browser, real_search, tmp_path):
    url, search, tmp = real_search
    with serve_dashboard(url, tmp / "dashboard.log") as address:
        page = open_page(browser, address, search)
        traces = check_chart_against_store(page, url, search)
        click_front_point_and_check_detail(page, traces, 0)
        full_screenshot(page, tmp_path / "dashboard-real.png")
        shutil.copy(tmp_path / "dashboard-real.png", SCREENSHOT.with_name("dashboard-screenshot-real-search.png"))
        page.close()
