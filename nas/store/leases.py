"""One driver per search: the lease rows of ``search_leases``, read and written inside store transactions.

A lease names its driver (a random id per run, the host and the pid) and carries a heartbeat.
Taking one is a compare-and-swap: a new row (the primary key refuses a second), or the
replacement of exactly the stale row that was read, so two drivers racing for one search
cannot both win on any backend.  Whether a lease is stale is the caller's rule (it knows the
host and which processes are alive); the store only records.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from .engine import StoreError
from .models import SearchLease, utcnow


@dataclass(frozen=True)
class DriverLease:
    """Who runs a search: ``since`` when it took the search, ``heartbeat`` its last sign of life (UTC)."""

    driver_id: str
    host: str
    pid: int
    since: dt.datetime
    heartbeat: dt.datetime

    def describe(self, now: dt.datetime | None = None) -> str:
        """``host H, pid P, since T (last heartbeat N s ago)``."""
        age = ((now or utcnow()) - self.heartbeat).total_seconds()
        return (f"host {self.host}, pid {self.pid}, since {self.since.isoformat(timespec='seconds')} UTC "
                f"(last heartbeat {max(age, 0.0):.0f} s ago)")


@dataclass(frozen=True)
class DriverId:
    """The driver asking for a lease."""

    driver_id: str
    host: str
    pid: int


class SearchBusyError(StoreError):
    """Another live driver owns the search."""


def read_lease(s: Session, search_id: int) -> DriverLease | None:
    row = s.get(SearchLease, search_id)
    return None if row is None else _record(row)


def take_lease(s: Session, search_id: int, search_name: str, driver: DriverId,
               is_stale: Callable[[DriverLease], bool]) -> DriverLease | None:
    """Take the search for ``driver``; returns the stale lease it replaced (None if it was free).

    Raises ``SearchBusyError`` naming the owner while a live driver holds it.
    """
    now = utcnow()
    held = read_lease(s, search_id)
    if held is None:
        s.add(SearchLease(search_id=search_id, driver_id=driver.driver_id, host=driver.host, pid=driver.pid,
                          acquired_at=now, heartbeat_at=now))
        s.flush()  # a concurrent insert for the same search fails here (primary key) or at commit
        return None
    if held.driver_id == driver.driver_id:
        return None
    if not is_stale(held):
        raise busy(search_name, held)
    swapped = s.execute(
        update(SearchLease)
        .where(SearchLease.search_id == search_id, SearchLease.driver_id == held.driver_id,
               SearchLease.heartbeat_at == held.heartbeat)
        .values(driver_id=driver.driver_id, host=driver.host, pid=driver.pid, acquired_at=now, heartbeat_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if swapped != 1:  # another driver renewed or took it between our read and write
        raise busy(search_name, read_lease(s, search_id) or held)
    return held


def renew_lease(s: Session, search_id: int, driver_id: str) -> bool:
    """Refresh the heartbeat; False when the lease is no longer this driver's (taken over)."""
    return s.execute(
        update(SearchLease).where(SearchLease.search_id == search_id, SearchLease.driver_id == driver_id)
        .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False)).rowcount == 1


def drop_lease(s: Session, search_id: int, driver_id: str) -> bool:
    """Delete this driver's lease; False when another driver holds it now."""
    return s.execute(
        delete(SearchLease).where(SearchLease.search_id == search_id, SearchLease.driver_id == driver_id)
        .execution_options(synchronize_session=False)).rowcount == 1


def busy(search_name: str, lease: DriverLease) -> SearchBusyError:
    return SearchBusyError(f"search {search_name!r} is being run by another driver ({lease.describe()}); "
                           f"wait for it to end or stop it (Ctrl+C or kill {lease.pid} on {lease.host}), "
                           f"then --resume {search_name}")


def _record(row: SearchLease) -> DriverLease:
    return DriverLease(driver_id=row.driver_id, host=row.host, pid=row.pid, since=row.acquired_at,
                       heartbeat=row.heartbeat_at)


__all__ = ["DriverId", "DriverLease", "SearchBusyError", "busy", "drop_lease", "read_lease", "renew_lease",
           "take_lease"]
