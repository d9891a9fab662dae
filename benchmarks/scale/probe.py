"""Run ``nas search`` (``nas.cli.main``, unchanged) with timers on its store writes and CPU clock.

    python -m benchmarks.scale.probe STATS.json search --space ... --address ...

The probe only observes: every ``Store`` method that writes is wrapped by a timer, and the CPU time
of the process is read when the first trial starts, so start-up (imports, Ray attach, store
open) can be told apart from the per-trial cost.  The figures are written to ``STATS.json``
every second and at exit, so a driver killed with SIGKILL leaves what it had measured.
"""
from __future__ import annotations

import functools
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

WRITES = ("create_search", "claim_search", "renew_lease", "release_search", "update_search", "start_trial",
          "record_measurement", "record_epoch", "finish_trial", "set_device_hours", "record_reuse",
          "mark_running_as_failed")
DUMP_EVERY_S = 1.0


class Probe:
    def __init__(self, path: Path):
        self.path = path
        self.started = time.monotonic()
        self.write_ms: list[float] = []
        self.events = 0
        self.cpu_at_first_trial: float | None = None
        self.wall_at_first_trial: float | None = None
        self._lock = threading.Lock()

    def timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                with self._lock:
                    self.write_ms.append((time.perf_counter() - t0) * 1000.0)
        return wrapper

    def first_trial(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.cpu_at_first_trial is None:
                self.cpu_at_first_trial = time.process_time()
                self.wall_at_first_trial = time.monotonic() - self.started
            self.events += 1
            return method(*args, **kwargs)
        return wrapper

    def dump(self) -> None:
        with self._lock:
            writes = list(self.write_ms)
        stats = {"pid": os.getpid(), "wall_s": time.monotonic() - self.started, "cpu_s": time.process_time(),
                 "cpu_at_first_trial_s": self.cpu_at_first_trial, "wall_at_first_trial_s": self.wall_at_first_trial,
                 "trials_started": self.events, "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                 "store_write_ms": writes}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(stats))
        tmp.replace(self.path)

    def install(self) -> None:
        from nas.search.recorder import SearchRecorder
        from nas.store import Store

        for name in WRITES:
            setattr(Store, name, self.timed(getattr(Store, name)))
        SearchRecorder.trial_started = self.first_trial(SearchRecorder.trial_started)

        def dump_loop() -> None:
            while True:
                time.sleep(DUMP_EVERY_S)
                self.dump()

        threading.Thread(target=dump_loop, daemon=True, name="scale-probe").start()


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m benchmarks.scale.probe STATS.json NAS-ARGS...", file=sys.stderr)
        return 2
    probe = Probe(Path(argv[0]))
    probe.install()
    from nas.cli import main as nas_main

    # SCALE_PROBE_PROFILE=DIR: a cProfile of the driver's main thread in CPU time (waits on Ray cost
    # nothing), written to DIR/<search>-<STATS name>.prof, for digging into what a trial costs the driver.
    profile_dir = os.environ.get("SCALE_PROBE_PROFILE")
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
    try:
        return nas_main(argv[1:])
    finally:
        probe.dump()
        if profiler is not None:
            profiler.disable()
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(str(Path(profile_dir) / f"{Path(argv[0]).parent.name}-{Path(argv[0]).stem}.prof"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
