"""Kill a driver's local Ray when the driver dies: a tiny watchdog process (Linux; standard library only).

What Ray guarantees for a local instance started by ``ray.init()``: the processes it starts
itself (GCS server, raylet, monitor, log monitor, dashboard) get ``PR_SET_PDEATHSIG=SIGKILL``
on Linux, so the kernel kills them when the driver dies, even by SIGKILL.  Their own children
do not: the dashboard and runtime-env agents and every worker (trials included) are children of
the raylet, and only notice it is gone by polling it, so after a driver SIGKILL they linger,
re-parented to PID 1, for tens of seconds (20-80 s measured), holding memory, GPUs and device
locks.  A clean exit (return, exception, Ctrl+C, SIGTERM) is not affected: ``ray.shutdown()``
stops them all.

This watchdog closes that gap for a local instance the driver started (never for a cluster it
attached to).  The driver starts it right after ``ray.init`` with the pids of the processes Ray
started, in a session of its own (so a signal to the driver's process group spares it), and
keeps the write end of its stdin pipe; nobody else holds that end.  The watchdog
remembers the processes below those roots (every ``POLL_S`` seconds, with their start times so a
reused pid is never mistaken for one of them) and waits for end-of-file on stdin, which comes
the moment the driver exits, however it exits.  It then SIGKILLs whatever of them is still
alive, plus any process of this user whose environment names one of the remembered raylets
(``RAY_RAYLET_PID``: a worker started after the last look), and exits.

Run as ``python ray_watchdog.py ROOT_PID...`` (as a script, so the heavy ``nas`` package is not
imported).
"""
from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

POLL_S = 1.0
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, is [0])."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot); None if it is gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def descendants(roots: list[int]) -> dict[int, int]:
    """``{pid: start time}`` of ``roots`` and every process below them."""
    found: dict[int, int] = {}
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        started = start_time(pid)
        if started is None:
            continue
        found[pid] = started
        todo += _children(pid)
    return found


def _comm(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def workers_of(raylets: set[int]) -> dict[int, int]:
    """This user's processes whose environment names one of ``raylets`` (Ray workers)."""
    markers = {f"RAY_RAYLET_PID={pid}".encode() for pid in raylets}
    found: dict[int, int] = {}
    if not markers:
        return found
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        started = start_time(int(entry.name))
        if env & markers and started is not None:
            found[int(entry.name)] = started
    return found


def sweep(known: dict[int, int]) -> list[int]:
    """SIGKILL the ``known`` processes still alive (same pid and start time); returns their pids."""
    me = os.getpid()
    killed = []
    for pid, started in known.items():
        if pid != me and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                continue
    return killed


def watch(roots: list[int], stdin_fd: int = 0, poll_s: float = POLL_S) -> list[int]:
    """Remember the processes below ``roots`` until ``stdin_fd`` reaches end-of-file; then kill them."""
    known = descendants(roots)
    while True:
        ready, _, _ = select.select([stdin_fd], [], [], poll_s)
        if ready and not os.read(stdin_fd, 4096):
            break
        known.update(descendants(roots))
    known.update(descendants(roots))
    known.update(workers_of({pid for pid in known if _comm(pid) == "raylet"}))
    return sweep(known)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C on the terminal is for the driver
    watch([int(pid) for pid in argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
