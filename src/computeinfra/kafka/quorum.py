"""A local Kafka cluster of several KRaft nodes on 127.0.0.1, with a static controller quorum.

Each node is a ``LocalBroker`` (``broker.py``) that is both controller and broker, with its
own ports and data folder (``<data_dir>/node-<id>``). They share one cluster id and name
the same voters (``controller.quorum.voters``), so every node is formatted alike, without
``--standalone``. A majority of the voters must run for the cluster to serve: the nodes are
started together, and a lone node waits for its peers. With three nodes, topics get three
replicas and ``min.insync.replicas=2``, so one node can die without losing a write.

``quorum.json`` in ``data_dir`` records the layout, so later commands (``kafka stop``,
``status``, ``up``) find the cluster without being told its size again.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from computeinfra.errors import BrokerError

from .broker import KAFKA_VERSION, BrokerConfig, BrokerStatus, LocalBroker

__all__ = ["BrokerQuorum", "QuorumConfig", "recorded_nodes"]

QUORUM_FILE = "quorum.json"
CLUSTER_ID_FILE = "cluster.id"
MAX_REPLICATION = 3
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0


def _replication(nodes: int) -> dict[str, str]:
    """Broker defaults for every topic, including Kafka's own offsets and transactions."""
    factor = min(nodes, MAX_REPLICATION)
    min_isr = str(2 if factor >= 3 else 1)
    return {
        "default.replication.factor": str(factor),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(factor),
        "transaction.state.log.replication.factor": str(factor),
        "transaction.state.log.min.isr": min_isr,
    }


@dataclass(frozen=True)
class QuorumConfig:
    """Node ``i`` (from 1) listens on ``port + 2(i-1)``, its controller on
    ``controller_port + 2(i-1)``: the single-node layout (9092, 9093), repeated."""

    data_dir: Path
    nodes: int = 3
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    version: str = KAFKA_VERSION
    # Explicit (broker, controller) ports per node, e.g. free ports in tests; wins if set.
    ports: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.nodes < 2:
            raise BrokerError(f"a quorum needs 2 nodes or more, not {self.nodes}")
        if self.ports and len(self.ports) != self.nodes:
            raise BrokerError(f"{len(self.ports)} port pairs given for {self.nodes} nodes")

    def node_ports(self) -> list[tuple[int, int]]:
        if self.ports:
            return list(self.ports)
        return [(self.port + 2 * i, self.controller_port + 2 * i) for i in range(self.nodes)]

    @property
    def bootstrap(self) -> str:
        """Every node, so clients find the cluster while any of them is up."""
        return ",".join(f"127.0.0.1:{port}" for port, _ in self.node_ports())

    @property
    def voters(self) -> str:
        return ",".join(
            f"{i}@127.0.0.1:{controller}"
            for i, (_, controller) in enumerate(self.node_ports(), start=1)
        )

    def node(self, node_id: int) -> BrokerConfig:
        port, controller = self.node_ports()[node_id - 1]
        return BrokerConfig(
            data_dir=Path(self.data_dir) / f"node-{node_id}",
            port=port,
            controller_port=controller,
            node_id=node_id,
            heap=self.heap,
            version=self.version,
            voters=self.voters,
            overrides=tuple(_replication(self.nodes).items()),
        )


def recorded_nodes(data_dir: Path) -> int | None:
    """How many nodes the cluster in ``data_dir`` was created with, if there is one."""
    try:
        layout = json.loads((Path(data_dir) / QUORUM_FILE).read_text())
    except (OSError, ValueError):
        return None
    nodes = layout.get("nodes") if isinstance(layout, dict) else None
    return nodes if isinstance(nodes, int) else None


class BrokerQuorum:
    """Start, stop, inspect and wipe the nodes of one local cluster together."""

    def __init__(self, config: QuorumConfig) -> None:
        self._config = config
        self._dir = Path(config.data_dir).expanduser().resolve()
        self.brokers = [LocalBroker(config.node(i)) for i in range(1, config.nodes + 1)]

    @property
    def config(self) -> QuorumConfig:
        return self._config

    def broker(self, node_id: int) -> LocalBroker:
        """One node, e.g. to stop or kill it alone (ids count from 1)."""
        return self.brokers[node_id - 1]

    def status(self) -> BrokerStatus:
        """``running`` only if every node runs; ``pid`` is the first node's."""
        nodes = self.node_statuses()
        pid = nodes[0].pid
        return BrokerStatus(all(n.running for n in nodes), pid, self._config.bootstrap, self._dir)

    def node_statuses(self) -> list[BrokerStatus]:
        return [broker.status() for broker in self.brokers]

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start every node that is not running and return when all serve clients.

        Together, because none is ready before a majority of controllers has elected a
        leader. If one fails, all are stopped: a half cluster is not left behind.
        """
        self._prepare()
        try:
            self._each(lambda broker: broker.start(timeout))
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every node by pid, all at once: a node stopping alone after its peers
        would wait for a controller majority that has already gone."""
        self._each(lambda broker: broker.stop(timeout))

    def reset(self) -> None:
        """Stop the nodes and delete all their data, and the recorded layout."""
        self.stop()
        if self._dir.is_dir():
            shutil.rmtree(self._dir)

    def _prepare(self) -> None:
        """One cluster id for all nodes, and the layout recorded, before any node formats."""
        recorded = recorded_nodes(self._dir)
        if recorded is not None and recorded != self._config.nodes:
            raise BrokerError(
                f"the local Kafka cluster in {self._dir} has {recorded} nodes, not "
                f"{self._config.nodes}; start it with --nodes {recorded}, or delete it with "
                "`computeinfra kafka reset` first"
            )
        self._dir.mkdir(parents=True, exist_ok=True)
        # LocalBroker generates an id in its own folder if none is there; ours goes first.
        shared = self._cluster_id()
        for broker in self.brokers:
            folder = Path(broker.config.data_dir)
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / CLUSTER_ID_FILE).is_file():
                (folder / CLUSTER_ID_FILE).write_text(shared + "\n")
        layout: dict[str, Any] = {
            "nodes": self._config.nodes,
            "bootstrap": self._config.bootstrap,
            "voters": self._config.voters,
        }
        (self._dir / QUORUM_FILE).write_text(json.dumps(layout, indent=1) + "\n")

    def _cluster_id(self) -> str:
        path = self._dir / CLUSTER_ID_FILE
        while not path.is_file():  # Kafka's format: a UUID, base64url, unpadded
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):  # would read as a command-line flag
                path.write_text(cid + "\n")
        return path.read_text().strip()

    def _each(self, action: Callable[[LocalBroker], None]) -> None:
        """Run ``action`` on every node in parallel; re-raise the first failure."""
        with ThreadPoolExecutor(max_workers=len(self.brokers)) as pool:
            futures = [pool.submit(action, broker) for broker in self.brokers]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]
