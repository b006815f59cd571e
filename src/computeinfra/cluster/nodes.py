"""Which nodes of the Ray cluster are alive, and what resources each has (for placement)."""

from __future__ import annotations

import threading
import time
from typing import Any

import ray

__all__ = ["RayNodeDirectory"]


class RayNodeDirectory:
    """The Ray cluster's live nodes, read at most once per ``ttl`` seconds: a lost node is
    seen that much later (``COMPUTEINFRA_NODES_CACHE_SECONDS``)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, dict[str, Any]]] = (-ttl, {})

    def alive(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            at, nodes = self._cached
            if time.monotonic() - at >= self._ttl:
                nodes = self._read()
                self._cached = (time.monotonic(), nodes)
            return nodes

    @staticmethod
    def _read() -> dict[str, dict[str, Any]]:
        return {
            node["NodeID"]: {
                "name": node.get("NodeName") or node["NodeID"][:12],
                "resources": dict(node.get("Resources") or {}),
            }
            for node in ray.nodes()  # type: ignore[no-untyped-call]
            if node.get("Alive")
        }
