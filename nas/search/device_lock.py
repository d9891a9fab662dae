"""Exclusive speed measurement on shared devices: a cross-process reader/writer lock per device.

Latency and throughput are only meaningful when nothing else runs on the device being timed,
yet Tune packs several trials onto one device (``--gpus-per-trial 0.5`` puts two trials on a
GPU; CPU trials share a node).  Every trial therefore takes a per-device reader/writer lock, a
pair of ``flock`` files keyed by the device the trial computes on (the GPU's UUID, or ``cpu``
for CPU trials on that node):

* from its start until its ``measure`` report, a trial holds the lock **exclusively**;
* while it trains, it holds the lock **shared**, one epoch at a time: it lets go before each
  report to Tune and takes the lock again (through the gate) before the next epoch.

A measurement waits for the gate, then for every trainer on its device to end its current
epoch; trainers queue behind a waiting measurement at the gate.  So no two measurements and no
measurement and training ever overlap on one device, and a measurement waits at most one epoch
of each neighbour.  The locks live in the trial process and die with it (killed, stopped by
ASHA, crashed), so they cannot leak.  Trials holding whole GPUs never contend.

The lock files live in a directory per user, ``$TMPDIR/mixer-nas-device-locks-<uid>`` (mode
0700), or in ``$MIXER_NAS_LOCK_DIR``; a directory owned by another user, or writable by
others, is refused, so users sharing a machine neither block nor spoof each other's locks.
"""
from __future__ import annotations

import fcntl
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from nas.errors import UsageError

if TYPE_CHECKING:
    import torch

LOCK_DIR_NAME = "mixer-nas-device-locks"
LOCK_DIR_ENV = "MIXER_NAS_LOCK_DIR"


def lock_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """This user's lock directory (created 0700); UsageError if it belongs to someone else.

    ``configured`` (or else ``$MIXER_NAS_LOCK_DIR``) overrides the default
    ``<tempdir>/mixer-nas-device-locks-<uid>``.
    """
    chosen = configured if configured is not None else os.environ.get(LOCK_DIR_ENV) or None
    root = Path(chosen).expanduser() if chosen is not None else \
        Path(tempfile.gettempdir()) / f"{LOCK_DIR_NAME}-{os.getuid()}"
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = root.lstat()
    except OSError as exc:
        raise UsageError(f"device lock directory {str(root)!r} cannot be created ({exc.strerror or exc}); "
                         f"set {LOCK_DIR_ENV} to a directory of yours") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"device lock directory {str(root)!r} is not a directory (a symlink or a file); "
                         f"remove it or set {LOCK_DIR_ENV}")
    if info.st_uid != os.getuid():
        raise UsageError(f"device lock directory {str(root)!r} belongs to uid {info.st_uid}, not to you "
                         f"(uid {os.getuid()}); remove it or set {LOCK_DIR_ENV} to a directory of yours")
    if info.st_mode & 0o022:  # others could plant or swap lock files
        raise UsageError(f"device lock directory {str(root)!r} is writable by other users "
                         f"(mode {stat.S_IMODE(info.st_mode):o}); chmod 700 it or set {LOCK_DIR_ENV}")
    return root


class DeviceLock:
    """A cross-process reader/writer lock per device key, fair to writers (gate + lock files)."""

    def __init__(self, keys: Iterable[str], lock_dir_path: str | os.PathLike[str] | None = None):
        root = lock_dir(lock_dir_path)
        names = sorted({re.sub(r"[^A-Za-z0-9_.-]", "_", k) for k in keys})  # sorted: one global order
        self._files = [(open(root / f"{n}.gate", "a+b"), open(root / f"{n}.lock", "a+b")) for n in names]

    def acquire_exclusive(self) -> None:
        self.release()
        for gate, lock in self._files:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)

    def acquire_shared(self) -> None:
        self.release()
        for gate, lock in self._files:
            fcntl.flock(gate, fcntl.LOCK_EX)  # queue behind a waiting writer
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)

    def release(self) -> None:
        for gate, lock in reversed(self._files):
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)

    def close(self) -> None:
        self.release()
        for gate, lock in self._files:
            gate.close()
            lock.close()


def device_lock_keys(device: torch.device, gpu_ids: list[str]) -> list[str]:
    """Keys naming the hardware a trial computes on: GPU UUID(s), or the node's CPUs."""
    if device.type != "cuda":
        return ["cpu"]
    import torch  # here, not at the top: tabular-simulation trials lock fake GPUs without torch

    uuids = [getattr(torch.cuda.get_device_properties(i), "uuid", None) for i in range(torch.cuda.device_count())]
    if uuids and all(uuids):
        return [f"gpu-{u}" for u in uuids]
    return [f"gpu-{g}" for g in gpu_ids]
