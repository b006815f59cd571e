"""Starting and stopping the working blocks and the analyzer on a Ray cluster."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from computeinfra.config import Settings
from computeinfra.errors import ClusterError
from computeinfra.kafka.admin import pending_partitions
from computeinfra.protocol import BlockState

from .actors import (
    SUPERVISOR_PREFIX,
    AnalyzerActor,
    SupervisorActor,
    WorkerActor,
    actor_name,
    supervisor_names,
)
from .connect import connect

__all__ = [
    "Cluster",
    "analyzer_snapshot",
    "block_statuses",
    "get_analyzer",
    "group_settled",
    "start_block",
    "stop_blocks",
    "supervisor_statuses",
    "wait_blocks_ready",
    "workers_per_block",
]

_log = logging.getLogger("computeinfra.launcher")
# Long enough for a cold start on a loaded machine, and for a previous run's group seats to
# expire (the session timeout); past it, `up` runs on with the blocks that are ready.
READY_TIMEOUT_SECONDS = 60.0
STOP_POLL_SECONDS = 0.5
STATUS_TIMEOUT_SECONDS = 10.0
# Distinct for every process that starts blocks (each `up`, each `up --join`), the same for
# every Ray restart of the actors it started (they keep their constructor arguments).
RUN_ID = uuid.uuid4().hex[:8]


def member_id(settings: Settings, block: int, node_name: str | None = None) -> str:
    """A block's identity towards Kafka: its static group member id and transactional.id.

    Stable across restarts of the block (so a restart fences its predecessor), and distinct
    between deployments on different hosts, and between joined nodes (``node_name``), that
    share one Kafka cluster.
    """
    if node_name is not None:
        return f"{settings.namespace}-node-{node_name}-block-{block}"
    return f"{settings.namespace}-{settings.host_id or socket.gethostname()}-block-{block}"


def group_instance_id(member: str, run: str) -> str:
    """A block's static seat in the consumer group: new on every start of the blocks.

    A static member that joins again takes back, without a rebalance, the assignment the
    group stored for its id, and that can be the first half of a cooperative rebalance that
    never finished: partitions revoked from it and given to nobody, unowned for good (the
    data directory of issue #17). A new id joins as a new member, so the group rebalances
    in full; the previous run's seats expire after the session timeout. Ray restarts of a
    supervisor keep the id, so they still take their partitions straight back.
    """
    return f"{member}-{run}"


def pinned(node_id: str) -> dict[str, Any]:
    """Actor options that keep it on one node, restarts included: if the node dies, its
    actors die with it rather than move, and the consumer group hands their partitions on."""
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False)}


def workers_per_block(settings: Settings, blocks: int, cpus: int | None = None) -> int:
    """``COMPUTEINFRA_CONCURRENCY``, or else one worker per core a block owns (at least one)."""
    if settings.concurrency:
        return settings.concurrency
    return max(1, (cpus or os.cpu_count() or 1) // max(blocks, 1))


def worker_names(label: str, count: int) -> list[str]:
    """``worker-<label>`` for a block's first worker (the name tools look for), then
    ``worker-<label>.1`` and on."""
    return [f"worker-{label}" + (f".{index}" if index else "") for index in range(count)]


def start_block(
    settings: Settings, block: int, node_id: str, node_name: str | None = None, workers: int = 1
) -> tuple[list[Any], Any]:
    """A block's workers and supervisor on ``node_id``; a joined node's are named after it
    (``supervisor-<node_name>-<block>``), the head's plainly (``supervisor-<block>``)."""
    label = str(block) if node_name is None else f"{node_name}-{block}"
    names = worker_names(label, workers)
    handles = [
        WorkerActor.options(name=name, **pinned(node_id)).remote(settings, block) for name in names
    ]
    supervisor = SupervisorActor.options(name=f"{SUPERVISOR_PREFIX}{label}", **pinned(node_id))
    identity = member_id(settings, block, node_name)
    handle = supervisor.remote(
        settings, block, identity, names, group_instance_id(identity, RUN_ID)
    )
    return handles, handle


def group_settled(statuses: list[dict[str, Any]], partitions: int) -> bool:
    """Whether these blocks are the whole group, own every one of ``pendingJobs``'
    ``partitions``, and have shared them out.

    Each block joins on its own, so the first one briefly holds every partition; until the
    rebalance ends, the partitions on their way to a later block wait (seconds, measured).
    A partition no block owns would never be read: balance alone does not show it.
    """
    owned = sorted(p for s in statuses for p in s.get("partitions", []))
    counts = [len(s.get("partitions", [])) for s in statuses]
    return owned == list(range(partitions)) and max(counts) - min(counts) <= 1


def wait_blocks_ready(
    supervisors: list[Any], timeout: float = READY_TIMEOUT_SECONDS, *, partitions: int = 0
) -> None:
    """Wait until every block is idle with a live worker and, given ``pendingJobs``'
    ``partitions``, until the group owns them all and has shared them among these blocks
    (only a cluster's first blocks can tell)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = supervisor_statuses(supervisors)
        if all(s["state"] == BlockState.IDLE and s["worker_pid"] for s in statuses) and (
            not partitions or group_settled(statuses, partitions)
        ):
            return
        time.sleep(0.2)  # polling a condition with a deadline, not synchronising on time
    raise ClusterError(f"the working blocks were not ready after {timeout:.0f} s")


def stop_blocks(
    supervisors: list[Any],
    others: list[Any],
    drain: float | None = None,
    now: threading.Event | None = None,
) -> None:
    """Let every supervisor drain (its running jobs end, for ``drain`` seconds or by default
    their remaining time limit) and commit, then end all the actors; at once when ``now``
    is set (a second Ctrl-C)."""
    pending = [s.stop.remote(drain) for s in supervisors]
    try:
        while pending and not (now is not None and now.is_set()):
            _done, pending = ray.wait(pending, num_returns=len(pending), timeout=STOP_POLL_SECONDS)
    except Exception as exc:  # a dead actor must not keep the rest from stopping
        _log.warning("stopping supervisors: %s", exc)
    for handle in (*supervisors, *others):
        if handle is not None:
            ray.kill(handle, no_restart=True)


@dataclass
class Cluster:
    """The blocks and analyzer this process created; they die with it (driver-owned)."""

    settings: Settings
    blocks: int
    supervisors: list[Any] = field(default_factory=list)
    workers: list[Any] = field(default_factory=list)
    analyzer: Any = None
    address: str | None = None

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start Ray (or join it), the analyzer and the blocks, without waiting for them."""
        self.address = connect(self.settings, start_local=True, num_cpus=self._cpus())
        # Everything this driver starts stays on its node (the head): joined nodes come and go.
        here = ray.get_runtime_context().get_node_id()
        self.analyzer = AnalyzerActor.options(name=actor_name("analyzer"), **pinned(here)).remote(
            self.settings
        )
        count = workers_per_block(self.settings, self.blocks, self._cpus())
        for block in range(self.blocks):
            workers, supervisor = start_block(self.settings, block, here, workers=count)
            self.workers.extend(workers)
            self.supervisors.append(supervisor)

    def _cpus(self) -> int:
        """What Ray is told this node has: at least a core per worker it will run."""
        cores = max(self.blocks, os.cpu_count() or 1)
        return max(cores, self.blocks * workers_per_block(self.settings, self.blocks, cores))

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Until every block is idle and the group has shared every partition among them
        (the first blocks of a cluster: nobody else shares the group yet); ``ClusterError``
        after ``timeout``."""
        wait_blocks_ready(self.supervisors, timeout, partitions=pending_partitions(self.settings))

    def status(self) -> list[dict[str, Any]]:
        return supervisor_statuses(self.supervisors)

    def reseat(self) -> None:
        """The block holding the fewest partitions rejoins the group with a new seat
        (``keeper.py``): one new member rebalances the whole group, and only that block
        lets go of what it had in hand."""
        rows = self.status()
        index = min(range(len(rows)), key=lambda i: len(rows[i].get("partitions") or []))
        ray.get(self.supervisors[index].reseat.remote(), timeout=STATUS_TIMEOUT_SECONDS)

    def restart_block(self, index: int) -> None:
        """End block ``index``'s supervisor process; Ray starts it again (``keeper.py``)."""
        ray.kill(self.supervisors[index], no_restart=False)

    def stop(self, drain: float | None = None, now: threading.Event | None = None) -> None:
        """Let every supervisor drain and commit, then end all actors (``stop_blocks``)."""
        stop_blocks(self.supervisors, [*self.workers, self.analyzer], drain, now)
        self.supervisors, self.workers, self.analyzer = [], [], None


def supervisor_statuses(supervisors: list[Any]) -> list[dict[str, Any]]:
    """Each supervisor's status, or ``unreachable`` with why (``keeper.py`` reads these)."""
    refs = [s.status.remote() for s in supervisors]
    result = []
    for index, ref in enumerate(refs):
        try:
            result.append(ray.get(ref, timeout=STATUS_TIMEOUT_SECONDS))
        except Exception as exc:
            result.append(
                {
                    "block": index,
                    "state": BlockState.UNREACHABLE,
                    "error": str(exc),
                    "worker_pid": None,
                    "job": None,
                }
            )
    return result


def _block_order(name: str) -> tuple[str, int]:
    """The head's blocks first (``supervisor-3``), then each joined node's in number order."""
    label = name.removeprefix(SUPERVISOR_PREFIX)
    node, _, number = label.rpartition("-")
    return node, int(number) if number.isdigit() else -1


def block_statuses(settings: Settings) -> list[dict[str, Any]]:
    """Status of every block in the cluster, found by actor name, with its node's name."""
    connect(settings)
    names = sorted(supervisor_names(), key=_block_order)
    rows = supervisor_statuses([ray.get_actor(n) for n in names])
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    node_names = {n["NodeID"]: n.get("NodeName") for n in nodes}
    for name, row in zip(names, rows, strict=True):
        row["name"] = name
        row["node_name"] = node_names.get(row.get("node"))
    return rows


def analyzer_snapshot(settings: Settings, timeout: float = STATUS_TIMEOUT_SECONDS * 3) -> Any:
    """The analyzer's figures (see ``Analyzer.snapshot``)."""
    return ray.get(get_analyzer(settings).snapshot.remote(), timeout=timeout)


def get_analyzer(settings: Settings) -> Any:
    connect(settings)
    try:
        return ray.get_actor(actor_name("analyzer"))
    except ValueError:
        raise ClusterError(
            "the analyzer is not running; start the cluster with `make run`"
        ) from None
