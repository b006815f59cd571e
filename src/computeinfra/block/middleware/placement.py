"""Placement: a job runs only on a block whose node has the resources its task declares.

Routing is by Kafka topics, like Celery queues. Every block reads ``pendingJobs``; a block
whose node lacks what a job's task needs (``@task(..., resources={"special": 1})``) forwards
the record, unchanged, to the task's lane topic (``protocol.lane_topic``), which only blocks
on nodes that have the resources read. If no live node in the Ray cluster has them, the job
is rejected at once with what is missing and how to add a node that has it: it never waits
for a node that may never come.

The node directory (which nodes are alive, and their resources) is an interface, so the
policy is tested without Ray; ``computeinfra.cluster.nodes.RayNodeDirectory`` reads
``ray.nodes()`` with a short cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from computeinfra.block.jobs import Assignment, Forward
from computeinfra.errors import RequestError
from computeinfra.protocol import lane_topic
from computeinfra.tasks.registry import TaskRegistry

from . import Middleware

__all__ = [
    "NodeDirectory",
    "ResourcePlacement",
    "lacking",
    "ray_resources",
]

# Task-facing names (as in ``ray.remote``) for Ray's own resource names.
RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}

Resources = Mapping[str, float]


def ray_resources(declared: Resources) -> dict[str, float]:
    """``{"num_cpus": 2, "special": 1}`` as Ray names them: ``{"CPU": 2, "special": 1}``."""
    return {RAY_NAMES.get(name, name): float(amount) for name, amount in declared.items()}


def lacking(have: Resources, need: Resources) -> dict[str, float]:
    """What of ``need`` a node with ``have`` (totals) lacks; empty if it can run the job."""
    return {name: amount for name, amount in need.items() if have.get(name, 0.0) < amount}


class NodeDirectory(Protocol):
    def alive(self) -> dict[str, dict[str, Any]]:
        """Live nodes by node id: ``{"name": str, "resources": {name: total}}``."""
        ...


def _describe(resources: Resources) -> str:
    return ", ".join(f"{name} {amount:g}" for name, amount in sorted(resources.items()))


class ResourcePlacement(Middleware):
    """Decides where each job runs; ``lanes()`` names the lane topics this node serves."""

    def __init__(
        self,
        registry: TaskRegistry,
        node: str | None,
        directory: NodeDirectory,
        ensure_topics: Callable[[Sequence[str]], object] = lambda names: None,
    ) -> None:
        self._node = node
        self._directory = directory
        self._ensure_topics = ensure_topics
        self._ensured: set[str] = set()
        self._needs = {t.name: ray_resources(t.needs) for t in registry if t.resources}

    def lanes(self) -> list[str]:
        """Lane topics of the tasks this node can run, created if missing: subscribe to them."""
        here = self._directory.alive().get(self._node or "", {}).get("resources", {})
        topics = [lane_topic(task) for task, need in self._needs.items() if not lacking(here, need)]
        self._ensure(topics)
        return sorted(topics)

    def placement(self, assignment: Assignment) -> Forward | RequestError | None:
        need = self._needs.get(assignment.task)
        if not need:
            return None
        nodes = self._directory.alive()
        here = nodes.get(self._node or "")
        if here is not None and not lacking(here["resources"], need):
            return None
        able = sorted(n["name"] for n in nodes.values() if not lacking(n["resources"], need))
        if not able:
            return RequestError(self._no_node_message(assignment.task, need, nodes), field="task")
        topic = lane_topic(assignment.task)
        self._ensure([topic])
        name = here["name"] if here else self._node
        return Forward(topic, f"needs {_describe(need)}; node {name} lacks it, {able} have it")

    def _ensure(self, topics: Sequence[str]) -> None:
        missing = [t for t in topics if t not in self._ensured]
        if missing:
            self._ensure_topics(missing)
            self._ensured.update(missing)

    @staticmethod
    def _no_node_message(task: str, need: Resources, nodes: Mapping[str, Any]) -> str:
        seen = "; ".join(
            f"{n['name']}: {_describe(lacking(n['resources'], need))} missing"
            for n in nodes.values()
        )
        return (
            f"task {task!r} needs {_describe(need)} and no live node has that "
            f"({seen or 'no live nodes'}). Add a node that has it, e.g. "
            f"`computeinfra up --join RAY_ADDRESS --resources '{json.dumps(need)}'`, "
            "then submit the job again"
        )
