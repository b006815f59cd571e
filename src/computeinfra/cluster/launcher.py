"""Starting and stopping the working blocks and the analyzer on a Ray cluster."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import ray

from computeinfra.config import Settings
from computeinfra.errors import ClusterError

from .actors import AnalyzerActor, SupervisorActor, WorkerActor, actor_name
from .connect import connect

__all__ = ["Cluster", "analyzer_snapshot", "block_statuses", "default_blocks", "get_analyzer"]

_log = logging.getLogger("computeinfra.launcher")
READY_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 60.0
STATUS_TIMEOUT_SECONDS = 10.0
SUPERVISOR_PREFIX = "supervisor-"


def member_id(settings: Settings, block: int) -> str:
    """A block's identity towards Kafka: its static group member id and transactional.id.

    Stable across restarts of the block (so a restart fences its predecessor), and distinct
    between deployments on different hosts that share one Kafka cluster.
    """
    return f"{settings.namespace}-{socket.gethostname()}-block-{block}"


def default_blocks() -> int:
    return int(os.environ.get("COMPUTEINFRA_BLOCKS") or os.cpu_count() or 1)


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
        self.address = connect(
            self.settings, start_local=True, num_cpus=max(self.blocks, os.cpu_count() or 1)
        )
        self.analyzer = AnalyzerActor.options(name=actor_name("analyzer")).remote(self.settings)
        for block in range(self.blocks):
            worker = WorkerActor.options(name=actor_name("worker", block)).remote(
                self.settings, block
            )
            supervisor = SupervisorActor.options(name=actor_name("supervisor", block)).remote(
                self.settings, block, member_id(self.settings, block)
            )
            self.workers.append(worker)
            self.supervisors.append(supervisor)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(s["state"] == "idle" and s["worker_pid"] for s in self.status()):
                return
            time.sleep(0.2)  # polling a condition with a deadline, not synchronising on time
        raise ClusterError(f"the working blocks were not ready after {timeout:.0f} s")

    def status(self) -> list[dict[str, Any]]:
        return _statuses(self.supervisors)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Let every supervisor finish its job and leave the group, then end all actors."""
        pending = [s.stop.remote(timeout) for s in self.supervisors]
        try:
            ray.wait(pending, num_returns=len(pending), timeout=timeout)
        except Exception as exc:  # a dead actor must not keep the rest from stopping
            _log.warning("stopping supervisors: %s", exc)
        for handle in (*self.supervisors, *self.workers, self.analyzer):
            if handle is not None:
                ray.kill(handle, no_restart=True)
        self.supervisors, self.workers, self.analyzer = [], [], None


def _statuses(supervisors: list[Any]) -> list[dict[str, Any]]:
    refs = [s.status.remote() for s in supervisors]
    result = []
    for index, ref in enumerate(refs):
        try:
            result.append(ray.get(ref, timeout=STATUS_TIMEOUT_SECONDS))
        except Exception as exc:
            result.append(
                {
                    "block": index,
                    "state": "unreachable",
                    "error": str(exc),
                    "worker_pid": None,
                    "job": None,
                }
            )
    return result


def block_statuses(settings: Settings) -> list[dict[str, Any]]:
    """Status of every block in the cluster, found by actor name."""
    connect(settings)
    names = sorted(
        (n for n in ray.util.list_named_actors() if n.startswith(SUPERVISOR_PREFIX)),
        key=lambda n: int(n.removeprefix(SUPERVISOR_PREFIX)),
    )
    return _statuses([ray.get_actor(n) for n in names])


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
