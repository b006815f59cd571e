"""The analyzer: metrics over every job, in memory that does not grow with the job count."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from computeinfra.metrics import QuantileSketch, SlidingRate
from computeinfra.protocol import Status

from .events import EventKind, JobEvent

__all__ = ["Analyzer"]

UNKNOWN_TASK = "(unreadable)"
LagProvider = Callable[[], int | None]


@dataclass
class TaskStats:
    received: int = 0
    started: int = 0
    completed: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in Status})
    queue_wait: QuantileSketch = field(default_factory=QuantileSketch)
    run_time: QuantileSketch = field(default_factory=QuantileSketch)

    def snapshot(self) -> dict[str, Any]:
        done = sum(self.completed.values())
        return {
            "submitted": self.received,
            **self.completed,
            "in_flight": max(self.received - done, 0),
            "attempts": self.started,
            "queue_wait": self.queue_wait.summary(),
            "run_time": self.run_time.summary(),
        }


class Analyzer:
    """Aggregates ``JobEvent``s by task. ``lag`` reads the backlog on demand."""

    def __init__(self, lag: LagProvider | None = None) -> None:
        self._lag = lag
        self._tasks: dict[str, TaskStats] = {}
        self._throughput = SlidingRate(60)
        self._restarts: dict[int, int] = {}
        self._events = 0
        self._since = time.time()

    def record(self, events: Iterable[JobEvent]) -> None:
        for event in events:
            self._events += 1
            stats = self._tasks.setdefault(event.task or UNKNOWN_TASK, TaskStats())
            if event.kind is EventKind.RECEIVED:
                stats.received += 1
            elif event.kind is EventKind.STARTED:
                stats.started += 1
            elif event.kind is EventKind.COMPLETED:
                self._completed(stats, event)
            elif event.kind is EventKind.WORKER_RESTART:
                self._restarts[event.block] = self._restarts.get(event.block, 0) + 1

    def _completed(self, stats: TaskStats, event: JobEvent) -> None:
        if event.status is not None:
            stats.completed[event.status] = stats.completed.get(event.status, 0) + 1
        if event.queue_wait is not None:
            stats.queue_wait.add(event.queue_wait)
        if event.run_time is not None:
            stats.run_time.add(event.run_time)
        self._throughput.add(1, at=event.at)

    def snapshot(self) -> dict[str, Any]:
        tasks = {name: stats.snapshot() for name, stats in sorted(self._tasks.items())}
        totals = {
            key: sum(t[key] for t in tasks.values())
            for key in ("submitted", *(s.value for s in Status), "in_flight")
        }
        return {
            "since": self._since,
            "events": self._events,
            "tasks": tasks,
            "totals": totals,
            "throughput": {
                "last_minute": self._throughput.total(),
                "per_second": self._throughput.per_second(),
            },
            "worker_restarts": {
                "total": sum(self._restarts.values()),
                "by_block": {str(b): n for b, n in sorted(self._restarts.items())},
            },
            "backlog": self._lag() if self._lag else None,
        }
