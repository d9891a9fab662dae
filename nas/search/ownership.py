"""Which driver owns a search: this process's identity, when another driver's lease is stale, and
the heartbeat that keeps ours fresh.

Staleness: a lease from this host whose process is gone is stale at once (a SIGKILLed driver,
so ``--resume`` right after works); any lease whose heartbeat is older than
``STALE_AFTER_S`` (``MISSED_BEATS`` renewals missed) is stale too, whatever the host (a
driver on another machine, a frozen one, or a pid since reused).  Heartbeats are written at
most every ``RENEW_S`` seconds, so keeping the lease costs one small UPDATE per interval.  The
age is measured against this host's clock: hosts sharing a store need roughly synchronised
clocks (NTP), or a fresh lease from a host whose clock runs behind looks stale early.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from typing import Callable

from nas.store import DriverId, DriverLease, Store
from nas.store.models import utcnow

RENEW_S = 10.0
MISSED_BEATS = 6
STALE_AFTER_S = RENEW_S * MISSED_BEATS


def this_driver() -> DriverId:
    """A fresh identity for this driver run (host name and pid name it to the user)."""
    return DriverId(driver_id=uuid.uuid4().hex, host=socket.gethostname(), pid=os.getpid())


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def lease_is_stale(lease: DriverLease, *, host: str | None = None, now: dt.datetime | None = None,
                   stale_after_s: float = STALE_AFTER_S, alive: Callable[[int], bool] = pid_alive) -> bool:
    """Whether ``lease``'s driver is gone (see the module docstring for the rule)."""
    if lease.host == (host or socket.gethostname()) and not alive(lease.pid):
        return True
    return ((now or utcnow()) - lease.heartbeat).total_seconds() > stale_after_s


class LeaseKeeper:
    """Renews this driver's lease at most every ``RENEW_S`` seconds; remembers if it was lost."""

    def __init__(self, store: Store, search_id: int, driver: DriverId, *,
                 clock: Callable[[], float] = time.monotonic, renew_s: float = RENEW_S):
        self.store = store
        self.search_id = search_id
        self.driver = driver
        self.clock = clock
        self.renew_s = renew_s
        self._renewed_at = clock()
        self.lost = False

    def beat(self, *, force: bool = False) -> bool:
        """Refresh the heartbeat if due; False once another driver has taken the search over."""
        if self.lost:
            return False
        if force or self.clock() - self._renewed_at >= self.renew_s:
            self._renewed_at = self.clock()
            self.lost = not self.store.renew_lease(self.search_id, self.driver.driver_id)
        return not self.lost

    def release(self, **fields) -> bool:
        """Give the search up, writing ``fields`` (status, charge) unless it was taken over."""
        if self.lost:
            return False
        return self.store.release_search(self.search_id, self.driver.driver_id, **fields)
