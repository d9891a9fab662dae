"""A simulated GPU pool on this machine: a Ray cluster of N nodes with G fake GPUs each.

``ray.cluster_utils.Cluster`` starts every node (GCS, raylets, agents) as processes of this one,
all bound to 127.0.0.1.  The head holds no CPUs or GPUs, so trials run only on the worker nodes
and the driver (``nas search --address``, which Ray connects to the head's raylet) survives the
removal of any worker node.  Every node's processes inherit this process's environment, which is
how the trial processes get ``MIXER_NAS_TABULAR`` and its companions.

Ray is tuned for many light workers on few cores: no prestarted idle workers (each node would
start one per fake CPU), no dashboard.  Every node gets the driver's watchdog
(``nas.search.ray_watchdog``), so however this process ends (even SIGKILL), the node's processes
and trial workers die with it instead of lingering; removing a node closes its watchdog, which
sweeps that node's workers at once, as a machine that dies takes its processes along.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nas.search.ray_session import configure_ray_env

WATCHDOG = Path(__file__).resolve().parents[2] / "nas" / "search" / "ray_watchdog.py"
SYSTEM_CONFIG = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}


class SimulatedPool:
    """``nodes`` x ``gpus_per_node`` fake GPUs (and as many CPUs per node), with ``env`` for the trial processes."""

    def __init__(self, nodes: int, gpus_per_node: int, env: dict[str, str]):
        configure_ray_env(address=None)  # loopback-only listeners; before ray is imported
        # The pool's nodes run without an auth token, as the drivers attach (simulate.py): a RAY_AUTH_MODE
        # inherited from the caller (e.g. a test process that attached somewhere) must not switch it on.
        os.environ.update({**env, "RAY_AUTH_MODE": "disabled"})
        from ray.cluster_utils import Cluster

        logging.getLogger("ray").setLevel(logging.ERROR)
        self.gpus_per_node = gpus_per_node
        self.cluster = Cluster(initialize_head=True, shutdown_at_exit=True, head_node_args={
            "num_cpus": 0, "num_gpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "_system_config": SYSTEM_CONFIG})
        self._watchdogs: dict[str, subprocess.Popen] = {}
        self._watch(self.cluster.head_node)
        self.nodes: list[Any] = []
        for _ in range(nodes):
            self.add_node()
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    @property
    def gpus(self) -> int:
        return len(self.nodes) * self.gpus_per_node

    def add_node(self) -> Any:
        node = self.cluster.add_node(num_cpus=self.gpus_per_node, num_gpus=self.gpus_per_node,
                                     node_ip_address="127.0.0.1")
        self.nodes.append(node)
        self._watch(node)
        return node

    def remove_node(self, index: int = -1) -> str:
        """Kill one worker node's processes (raylet, workers) at once, as a machine that dies; returns its id."""
        node = self.nodes.pop(index)
        self.cluster.remove_node(node, allow_graceful=False)
        self._unwatch(node.node_id)
        return node.node_id

    def shutdown(self) -> None:
        try:
            self.cluster.shutdown()
        finally:
            for node_id in list(self._watchdogs):
                self._unwatch(node_id)

    def _watch(self, node: Any) -> None:
        roots = [str(info.process.pid) for infos in node.all_processes.values() for info in infos]
        self._watchdogs[node.node_id] = subprocess.Popen(
            [sys.executable, str(WATCHDOG), *roots], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)

    def _unwatch(self, node_id: str) -> None:
        watchdog = self._watchdogs.pop(node_id)
        watchdog.stdin.close()  # end-of-file: it kills what is left of the node
        try:
            watchdog.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watchdog.kill()
