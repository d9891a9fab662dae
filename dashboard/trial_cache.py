"""The trials of one search as the page shows them, read incrementally (no Streamlit here).

A live page refreshes every ``REFRESH_SECONDS``; reading all 10,000 trials of a big search each
time costs seconds.  A finished trial row does not change any more, so after the first read only
what can have changed is read again: rows newer than the newest known one, rows still running,
and the newest ``RECENT_ROWS`` (a reused result is written in two steps).  Every ``FULL_READ_S``
the whole search is read again, so nothing cached can stay stale for long (a resumed search
rewriting its interrupted rows, say).  ``version`` changes exactly when the trials did, so what
the page derives from them can be cached on it.
"""
from __future__ import annotations

import itertools
import threading
import time
from typing import Callable

from nas.store import Store, TrialRecord, TrialStatus

FULL_READ_S = 60.0
RECENT_ROWS = 64
_VERSIONS = itertools.count(1)  # unique across caches, so a version names one set of trials


class TrialCache:
    """One search's trials, shared by every page of one dashboard process."""

    def __init__(self, search: str, clock: Callable[[], float] = time.monotonic):
        self.search = search
        self.clock = clock
        self.version = 0
        self._records: dict[int, TrialRecord] = {}
        self._sorted: list[TrialRecord] = []
        self._token: object = None
        self._full_at = -float("inf")
        self._lock = threading.Lock()

    def read(self, store: Store, token: object) -> tuple[int, list[TrialRecord]]:
        """(version, trials in id order); reads the store only when ``token`` differs from the last
        read's (the page passes one that changes once per refresh period).  The list is shared:
        callers must not change it."""
        with self._lock:
            now = self.clock()
            if token == self._token:
                return self.version, self._sorted
            if not self._records or now - self._full_at >= FULL_READ_S:
                rows = store.trials(search=self.search)
                changed = [r.id for r in rows] != [r.id for r in self._sorted] or \
                    any(self._records.get(r.id) != r for r in rows)
                self._records = {r.id: r for r in rows}
                self._full_at = now
            else:
                unsettled = [i for i, t in self._records.items() if t.status == TrialStatus.RUNNING]
                unsettled += [t.id for t in self._sorted[-RECENT_ROWS:]]
                rows = store.trials(search=self.search, newer_than=self._sorted[-1].id if self._sorted else 0,
                                    ids=unsettled)
                changed = False
                for row in rows:
                    if self._records.get(row.id) != row:
                        self._records[row.id] = row
                        changed = True
            self._token = token
            if changed:
                self.version = next(_VERSIONS)
                self._sorted = [self._records[i] for i in sorted(self._records)]
            return self.version, self._sorted
