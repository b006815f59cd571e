"""``computeinfra up --join ADDRESS``: a processing node that joins a running cluster.

A node is a Ray worker node (``ray start --address … --block``, our child process) and
``--blocks`` working blocks pinned to it, owned by this process (not detached). It needs
only the Ray address and Kafka's bootstrap address; it never starts a broker. Killing every
process of the node (this one, the Ray node's, the blocks') therefore takes the blocks down
with it and Ray cannot restart them elsewhere: their consumer-group sessions expire and the
blocks on the other nodes take over their partitions, reading again every job without a
committed answer. Started again under the same ``--node-name``, the node's blocks get the
same member ids and transactional ids, fence what the dead ones left, and the group hands
them partitions again.

Several nodes may share one host (and its 127.0.0.1): each is its own Ray node, with its own
ports and processes, which is how the tests run a cluster on one machine.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import ray

from computeinfra.cluster.connect import LOOPBACK, connect
from computeinfra.cluster.keeper import BlockKeeper
from computeinfra.cluster.launcher import (
    start_block,
    stop_blocks,
    supervisor_statuses,
    wait_blocks_ready,
    workers_per_block,
)
from computeinfra.config import Settings
from computeinfra.errors import ClusterError, ConfigError
from computeinfra.kafka.admin import check_reachable
from computeinfra.runtime.reap import end_processes
from computeinfra.runtime.up import stop_on_second_signal, wait_for_signal

__all__ = ["JoinedNode", "NodeSpec", "parse_resources", "serve_node"]

_log = logging.getLogger("computeinfra.node")
NODE_STOP_TIMEOUT_SECONDS = 30.0
_ALIASES = {"num_cpus": "CPU", "num_gpus": "GPU"}


def parse_resources(text: str | None) -> dict[str, float]:
    """``--resources '{"special": 1, "GPU": 2}'``: a JSON object of positive amounts."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--resources is not JSON ({exc}); e.g. '{{\"special\": 1}}'") from None
    if not isinstance(data, dict):
        raise ConfigError("--resources must be a JSON object, e.g. '{\"special\": 1}'")
    resources: dict[str, float] = {}
    for name, amount in data.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not amount > 0:
            raise ConfigError(f"--resources: {name!r} needs a positive number, not {amount!r}")
        resources[_ALIASES.get(str(name), str(name))] = float(amount)
    return resources


@dataclass(frozen=True)
class NodeSpec:
    """What ``up --join`` was asked for."""

    address: str
    blocks: int
    name: str
    resources: dict[str, float] = field(default_factory=dict)
    node_ip: str = LOOPBACK
    log_monitor: bool = False

    def ray_params(self) -> dict[str, Any]:
        """Keyword arguments of Ray's ``RayParams`` for a worker node, as
        ``ray.cluster_utils`` builds them to run several nodes on one host."""
        resources = dict(self.resources)
        cpus = resources.pop("CPU", float(max(self.blocks, os.cpu_count() or 1)))
        return {
            "gcs_address": self.address,
            "node_ip_address": self.node_ip,
            "node_name": self.name,
            "num_cpus": math.ceil(cpus),
            "num_gpus": int(resources.pop("GPU", 0)),
            **({"memory": int(resources.pop("memory"))} if "memory" in resources else {}),
            "resources": resources,
            # Free ports picked by the OS: the fixed defaults are taken by the host's other
            # nodes. One log monitor per host is enough (the head's, on a shared host).
            "node_manager_port": 0,
            "min_worker_port": 0,
            "max_worker_port": 0,
            "include_log_monitor": self.log_monitor,
        }


class JoinedNode:
    """The Ray node's processes and the blocks on it; ``stop()`` ends both, by pid.

    The Ray node runs as ``ray.cluster_utils`` runs one (``ray._private.node.Node``), not by
    ``ray start``: that command refuses a worker node while Ray is kept on loopback, and
    with that guard off it trades 127.0.0.1 for the host's outward address. Its processes
    are our children and die with us (Ray's kernel-level fate sharing).
    """

    def __init__(self, settings: Settings, spec: NodeSpec) -> None:
        self.settings = settings
        self.spec = spec
        self._ray_node: Any = None
        self.node_id: str | None = None
        self.supervisors: list[Any] = []
        self.workers: list[Any] = []

    def start(self, say: Callable[[str], None]) -> None:
        from ray._private.node import Node
        from ray._private.parameter import RayParams

        say(f"starting Ray node {self.spec.name!r}, joining {self.spec.address}…")
        params = RayParams(**self.spec.ray_params())
        # dashboard_agent_listen_port=None: a free port, not the fixed default.
        params.dashboard_agent_listen_port = None
        try:
            self._ray_node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=False)
        except Exception as exc:
            raise ClusterError(
                f"cannot start a Ray node joining {self.spec.address}: {exc}. Is the head "
                "running (`computeinfra up --head` prints the address to join)?"
            ) from exc
        self.node_id = self._ray_node.node_id
        connect(self.settings, address=self.spec.address)
        self._refuse_duplicate()
        say(f"node {self.spec.name} is {self.node_id}; starting {self.spec.blocks} block(s)…")
        count = workers_per_block(self.settings, self.spec.blocks)
        for block in range(self.spec.blocks):
            workers, supervisor = start_block(
                self.settings, block, self.node_id, self.spec.name, workers=count
            )
            self.workers.extend(workers)
            self.supervisors.append(supervisor)
        wait_blocks_ready(self.supervisors)

    def status(self) -> list[dict[str, Any]]:
        return supervisor_statuses(self.supervisors)

    def restart_block(self, index: int) -> None:
        """End block ``index``'s supervisor process; Ray starts it again (``keeper.py``)."""
        ray.kill(self.supervisors[index], no_restart=False)

    def stop(self, now: threading.Event | None = None) -> None:
        """Blocks first (they drain, commit and leave the group; at once when ``now`` is
        set), then the Ray node."""
        try:
            if self.supervisors and ray.is_initialized():
                stop_blocks(self.supervisors, self.workers, self.settings.drain_seconds, now)
        except Exception as exc:
            _log.warning("stopping the blocks of node %s: %s", self.spec.name, exc)
        self.supervisors, self.workers = [], []
        if ray.is_initialized():
            ray.shutdown()
        if self._ray_node is not None:
            self._ray_node.kill_all_processes(check_alive=False, allow_graceful=True, wait=True)
            self._ray_node = None
        _terminate_children(NODE_STOP_TIMEOUT_SECONDS)

    def _refuse_duplicate(self) -> None:
        """Two live nodes under one name would share member ids and fence each other."""
        nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
        named = [n for n in nodes if n["Alive"] and n.get("NodeName") == self.spec.name]
        if len(named) > 1:
            raise ClusterError(
                f"a node named {self.spec.name!r} is already in the cluster at "
                f"{self.spec.address}; give this one another --node-name"
            )


def _terminate_children(timeout: float) -> None:
    """SIGTERM what is left of the Ray node's processes (all are ours: we start no other),
    SIGKILL them after ``timeout``. By pid: other Ray nodes on the host are not ours."""
    end_processes(psutil.Process().children(recursive=True), timeout)


def serve_node(
    settings: Settings,
    spec: NodeSpec,
    say: Callable[[str], None],
    on_ready: Callable[[JoinedNode], Any] | None = None,
) -> None:
    """Run the node in the foreground until SIGINT or SIGTERM, then stop it by pid."""
    check_reachable(settings.bootstrap_servers)
    node = JoinedNode(settings, spec)
    now: threading.Event | None = None
    try:
        node.start(say)
        if on_ready is not None:
            on_ready(node)
        # As under `up`: a block that stays unreachable is restarted (its partitions would
        # otherwise sit with a member that answers nothing).
        keeper = BlockKeeper(node.status, node.restart_block)
        keeper.start()
        try:
            now = wait_for_signal(say)
        finally:
            keeper.stop()
        say("stopping…")
    finally:
        now = now or stop_on_second_signal(say)
        if node.supervisors:
            say("draining: running jobs end and commit (Ctrl-C again to stop now)…")
        node.stop(now)
        say("stopped.")
