"""Events only a supervisor sees, reported to the analyzer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["EventKind", "JobEvent"]


class EventKind(StrEnum):
    STARTED = "started"  # an attempt was sent to a worker
    WORKER_RESTART = "worker_restart"  # a worker process died (or was killed) and came back


@dataclass(frozen=True)
class JobEvent:
    kind: EventKind
    task: str | None
    block: int
    key: str | None = None
    at: float = field(default_factory=time.time)
