"""Kafka requests per job, counted by the broker itself (issue #15, step 1).

A local broker started with ``REQUEST_LOG_OPTS`` among ``COMPUTEINFRA_KAFKA_JVM_OPTS``
writes every request it served to ``<data_dir>/requests.log``, a line each (Kafka's own
``kafka.request.logger`` at DEBUG; see computeinfra/kafka/log4j2.yaml). ``RequestLog``
counts the lines written between two marks, by API and by client, on the clients'
listener only (the controller's own heartbeats are not a job's cost).

Why not JMX (``kafka.network:type=RequestMetrics``): the JVM's JMX agent also opens a
local connector on an ephemeral port bound to every interface, and nothing of ours may
listen beyond 127.0.0.1. The request log is the same count, from the same broker, with the
client's id besides; writing it costs the broker CPU, so CPU is measured on a run without it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["REQUEST_LOG_OPTS", "RequestLog"]

REQUEST_LOG_OPTS = "-Dcomputeinfra.request.log=DEBUG"
PREFIX = "Completed request:"
CLIENT_LISTENER = "PLAINTEXT"


def _client_kind(client_id: str) -> str:
    """A client id without the numbers that tell instances apart (``rdkafka`` ids, blocks)."""
    return re.sub(r"[-_.]?\d+$", "", client_id) or client_id


class RequestLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mark = self._size()

    def _size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def mark(self) -> None:
        """Count from here."""
        self._mark = self._size()

    def since_mark(self) -> dict[str, Any]:
        """Requests since the last mark: in all, by API, and by client kind."""
        by_api: Counter[str] = Counter()
        by_client: Counter[str] = Counter()
        with self.path.open("rb") as log:
            log.seek(self._mark)
            chunk = log.read()
        chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines: the last may be half written
        for line in chunk.decode(errors="replace").splitlines():
            if not line.startswith(PREFIX):
                continue
            entry = json.loads(line[len(PREFIX) :])
            if entry.get("listener") != CLIENT_LISTENER:
                continue
            header = entry["requestHeader"]
            by_api[header["requestApiKeyName"]] += 1
            by_client[_client_kind(str(header.get("clientId") or "?"))] += 1
        self._mark += len(chunk)
        return {
            "total": sum(by_api.values()),
            "by_api": dict(by_api.most_common()),
            "by_client": dict(by_client.most_common()),
        }
