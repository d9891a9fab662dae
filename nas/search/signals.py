"""SIGTERM stops a search the way Ctrl+C does.

Ray's ``ray.init`` installs its own SIGTERM handlers (``sys.exit`` from whatever the main
thread is doing, after killing the local Ray processes), which tears Tune down mid-step and
ends in a native abort (exit 134) with nothing recorded.  While a search runs, SIGTERM is
forwarded to the current SIGINT handler instead: inside ``Tuner.fit`` that is Tune's graceful
stop (the run ends, the trials in flight are recorded interrupted, the resume hint is
printed); elsewhere, and for a second signal, it is ``KeyboardInterrupt``.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


def _forward_to_sigint(signum: int, frame) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored or default (e.g. a background job): still stop, cleanly
        raise KeyboardInterrupt


@contextmanager
def sigterm_like_sigint() -> Iterator[None]:
    """Within the block, SIGTERM behaves like SIGINT (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _forward_to_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
