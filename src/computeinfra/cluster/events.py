"""Lifecycle events a supervisor reports to the analyzer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["EventKind", "JobEvent"]


class EventKind(StrEnum):
    RECEIVED = "received"  # a record was taken off pendingJobs
    STARTED = "started"  # an attempt was sent to a worker
    COMPLETED = "completed"  # a terminal completion was published
    WORKER_RESTART = "worker_restart"  # a worker process died and came back


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    task: str | None
    block: int
    key: str | None = None
    status: str | None = None
    queue_wait: float | None = None  # submitted -> first started, seconds
    run_time: float | None = None  # started -> finished, seconds (last attempt)
    at: float = field(default_factory=time.time)
