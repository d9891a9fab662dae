"""The Ray session of a search: environment, a local instance or an attached cluster, capacity.

Ray: a local instance by default (loopback only, no dashboard, no usage stats); ``--address
HOST:PORT`` (or ``auto``) attaches to a running cluster from a node of that cluster.  Ray
Client addresses (``ray://``) are refused: under Ray Client, Tune runs its loop, and so the
store-writing callback, on the head node instead of in this process.

A local instance we start dies with the driver: Ray itself only kills the processes it started
directly when the driver is SIGKILLed (``PR_SET_PDEATHSIG``); a watchdog process
(``nas.search.ray_watchdog``) kills the rest (agents, workers) at once instead of letting them
linger for tens of seconds.  An attached cluster is never touched.
"""
from __future__ import annotations

import logging
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.device import local_cpu_count, local_gpu_count
from nas.errors import UsageError
from nas.search.ray_messages import shorten_raylet_messages

ADDRESS_TIMEOUT_S = 3.0
ATTACH_TIMEOUT_S = 60.0
OBJECT_STORE_BYTES = 256 * 2**20

# Set before ``import ray`` (Ray reads some at import).  A local instance binds every listener
# to 127.0.0.1 instead of the machine's routable address.
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_AUTO_INIT": "1",  # we start Ray ourselves, with the resources we validated
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # the store records results; no result.json/progress.csv
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # failures are one store row and one progress line each
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}


def ray_already_running() -> bool:
    """Whether this process already has a Ray session (an embedding program, or a test session)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def check_address(address: str) -> None:
    """Fail fast (seconds, not Ray's minutes of retries) on an address no cluster answers at."""
    if address.startswith("ray://"):
        raise UsageError(
            f"--address {address}: Ray Client addresses are not supported (Tune would run the store-writing "
            f"loop on the head node); run nas search on a cluster node with --address HOST:PORT or auto, "
            f"e.g. through 'ray job submit'")
    if address == "auto":
        return
    match = re.fullmatch(r"\[?(?P<host>[^\[\]]+?)\]?:(?P<port>\d{1,5})", address)
    if match is None:
        raise UsageError(f"--address {address!r} must be HOST:PORT (the head's GCS port, e.g. 10.0.0.5:6379) or auto")
    try:
        socket.create_connection((match["host"], int(match["port"])), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"no Ray cluster reachable at {address}: {exc.strerror or exc}") from None



def configure_ray_env(address: str | None) -> None:
    """Environment for Ray and Tune; must run before ``import ray`` (Ray reads some at import).

    A local instance, or a head on this machine's loopback, binds to 127.0.0.1 (the driver must
    agree, or it looks for the head on the routable IP and hangs).  Attaching sends Ray's auth
    token (2.59+ heads require one; it is read from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``); set ``RAY_AUTH_MODE=disabled`` for a head started without it.
    """
    env = dict(RAY_ENV)
    if address is None or _is_loopback(address):
        env.update(LOCAL_RAY_ENV)
    if address is not None:
        env["RAY_AUTH_MODE"] = "token"
    for key, value in env.items():
        os.environ.setdefault(key, value)


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _attach(address: str, init_kwargs: dict[str, Any]) -> None:
    """``ray.init(address)``, reduced to one line on failure and bounded in time.

    Ray's C++ client logs every retry on stderr and, for a head it cannot reach at the address
    it resolves, retries for many minutes without a way to interrupt it; so stderr is held back
    while connecting and a watchdog ends the process after ``ATTACH_TIMEOUT_S``.
    """
    import ray

    held = tempfile.TemporaryFile(mode="w+b")
    saved_stderr = os.dup(2)
    connected = threading.Event()

    def watchdog() -> None:
        if not connected.wait(ATTACH_TIMEOUT_S):
            os.write(saved_stderr, f"error: no answer from the Ray cluster at {address} within "
                                   f"{ATTACH_TIMEOUT_S:.0f} s ({_last_ray_complaint(held)})\n".encode())
            os._exit(2)

    threading.Thread(target=watchdog, daemon=True).start()
    sys.stderr.flush()
    os.dup2(held.fileno(), 2)
    try:
        ray.init(address=address, **init_kwargs)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
        raise UsageError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]} "
                         f"({_last_ray_complaint(held)})") from None
    finally:
        connected.set()
        sys.stderr.flush()
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    held.seek(0)
    sys.stderr.write(held.read().decode(errors="replace"))  # a successful attach hides nothing
    held.close()


def _last_ray_complaint(held: Any) -> str:
    """The last warning Ray's client logged while connecting, e.g. a missing auth token."""
    held.seek(0)
    lines = [line for line in held.read().decode(errors="replace").splitlines() if "] " in line]
    if not lines:
        return "no details from Ray"
    reason = re.sub(r"^\S+\.(cc|h|py):\d+: ", "", lines[-1].split("] ", 1)[1])
    if "InvalidAuthToken" in reason:
        reason += "; put the head's token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
    return reason



@dataclass
class RaySession:
    """How this driver holds Ray: whether it connected (so it disconnects), and the watchdog of a
    local instance it started."""

    connected: bool
    watchdog: subprocess.Popen | None = None


def connect_ray(address: str | None) -> RaySession:
    """Start a local Ray instance (with its watchdog), or attach; ``disconnect_ray`` undoes it."""
    import ray

    if ray.is_initialized():  # an embedding program (or the test session) already runs one
        return RaySession(connected=False)
    shorten_raylet_messages()  # a dead worker is one short line on stdout, not 500 characters of ids
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        ray.init(address="local", num_cpus=local_cpu_count(), num_gpus=local_gpu_count(),
                 object_store_memory=OBJECT_STORE_BYTES, **common)
        return RaySession(connected=True, watchdog=_start_watchdog())
    _attach(address, common)
    return RaySession(connected=True)


def disconnect_ray(session: RaySession) -> None:
    """Stop the local instance (or leave the cluster); the watchdog then sweeps any straggler and exits."""
    import ray

    if session.connected:
        ray.shutdown()
    if session.watchdog is not None:
        session.watchdog.stdin.close()  # end-of-file: the same signal a dying driver gives
        try:
            session.watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _local_ray_pids() -> list[int]:
    """Pids of the processes ``ray.init`` started here (GCS, raylet, monitors); [] if Ray hides them."""
    import ray

    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    try:
        return [info.process.pid for infos in node.all_processes.values() for info in infos]
    except AttributeError:  # a Ray version without this (private) registry: no watchdog
        return []


def _start_watchdog() -> subprocess.Popen | None:
    """The watchdog of a local instance (Linux only: it reads /proc); None where it cannot run."""
    roots = _local_ray_pids()
    if not roots or not sys.platform.startswith("linux"):
        return None
    script = Path(__file__).with_name("ray_watchdog.py")
    try:
        return subprocess.Popen([sys.executable, str(script), *map(str, roots)], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
    except OSError:  # no interpreter to start (an unusual embedding): Ray's own clean-up only
        return None


def trials_that_fit(gpus: float, cpus: float, max_concurrent: int | None) -> int:
    """How many trials fit at once on the live nodes (or the user's cap); UsageError if not even one fits."""
    import ray

    fits = 0
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        by_cpu = math.floor(resources.get("CPU", 0.0) / cpus + 1e-9)
        by_gpu = math.floor(resources.get("GPU", 0.0) / gpus + 1e-9) if gpus > 0 else by_cpu
        fits += min(by_cpu, by_gpu)
    if fits == 0:
        total = ray.cluster_resources()
        raise UsageError(f"no Ray node can hold one trial ({cpus:g} CPU, {gpus:g} GPU); the cluster has "
                         f"{total.get('CPU', 0):g} CPU and {total.get('GPU', 0):g} GPU")
    return min(fits, max_concurrent) if max_concurrent else fits
