"""The analyzer: metrics over every job, in memory that does not grow with the job count.

Job counts and timings come from the topics themselves (every ``pendingJobs`` record, every
committed completion), so they are exact even when supervisors die mid-job, and a restarted
analyzer rebuilds them by reading the topics again. Supervisors add what only they see:
attempts started and worker restarts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from computeinfra.metrics import QuantileSketch, SlidingRate
from computeinfra.protocol import TERMINAL_STATES, Completion

from .events import EventKind, JobEvent

__all__ = ["Analyzer"]

UNKNOWN_TASK = "(unreadable)"
LagProvider = Callable[[], int | None]
# Upper bounds (s) of the cumulative histograms of queue wait and run time (Prometheus-style).
HISTOGRAM_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0
)  # fmt: skip


@dataclass
class Histogram:
    """Counts per upper bound, cumulative when reported, over ``HISTOGRAM_BUCKETS_SECONDS``."""

    counts: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_BUCKETS_SECONDS))
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        for index, bound in enumerate(HISTOGRAM_BUCKETS_SECONDS):
            if value <= bound:
                self.counts[index] += 1
                break

    def snapshot(self) -> dict[str, Any]:
        cumulative, running = [], 0
        for bound, n in zip(HISTOGRAM_BUCKETS_SECONDS, self.counts, strict=True):
            running += n
            cumulative.append([bound, running])
        return {"buckets": cumulative, "sum": self.total, "count": self.count}


@dataclass
class TaskStats:
    submitted: int = 0
    attempts: int = 0
    completed: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in TERMINAL_STATES})
    queue_wait: QuantileSketch = field(default_factory=QuantileSketch)
    run_time: QuantileSketch = field(default_factory=QuantileSketch)
    queue_wait_histogram: Histogram = field(default_factory=Histogram)
    run_time_histogram: Histogram = field(default_factory=Histogram)

    def snapshot(self) -> dict[str, Any]:
        done = sum(self.completed.values())
        # Both topics come through one consumer with no order between them, so an answer
        # can be read before its request: a job answered was submitted, and the figure (a
        # Prometheus counter too) never goes below the answers nor back down.
        submitted = max(self.submitted, done)
        return {
            "submitted": submitted,
            "requests_read": self.submitted,  # as read so far: below the answers a moment
            **self.completed,
            "in_flight": submitted - done,
            "attempts": self.attempts,
            "queue_wait": self.queue_wait.summary(),
            "run_time": self.run_time.summary(),
            "queue_wait_histogram": self.queue_wait_histogram.snapshot(),
            "run_time_histogram": self.run_time_histogram.snapshot(),
        }


class Analyzer:
    """Aggregates submissions, completions and supervisor events by task."""

    def __init__(self, lag: LagProvider | None = None) -> None:
        self._lag = lag
        self._tasks: dict[str, TaskStats] = {}
        self._throughput = SlidingRate(60)
        self._restarts: dict[int, int] = {}
        self._since = time.time()

    def _stats(self, task: str | None) -> TaskStats:
        return self._tasks.setdefault(task or UNKNOWN_TASK, TaskStats())

    def submitted(self, task: str | None) -> None:
        """A request was seen on ``pendingJobs`` (valid or not)."""
        self._stats(task).submitted += 1

    def completed(self, completion: Completion) -> None:
        """A completion was committed on ``completedJobs``."""
        stats = self._stats(completion.task)
        stats.completed[completion.status.value] += 1
        if completion.started_at is not None:
            if completion.submitted_at is not None:
                wait = max(completion.started_at - completion.submitted_at, 0.0)
                stats.queue_wait.add(wait)
                stats.queue_wait_histogram.add(wait)
            run = max(completion.finished_at - completion.started_at, 0.0)
            stats.run_time.add(run)
            stats.run_time_histogram.add(run)
        self._throughput.add(1, at=completion.finished_at)

    def record(self, events: Iterable[JobEvent]) -> None:
        """Events only supervisors see."""
        for event in events:
            if event.kind is EventKind.STARTED:
                self._stats(event.task).attempts += 1
            elif event.kind is EventKind.WORKER_RESTART:
                self._restarts[event.block] = self._restarts.get(event.block, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        tasks = {name: stats.snapshot() for name, stats in sorted(self._tasks.items())}
        totals = {
            key: sum(t[key] for t in tasks.values())
            for key in ("submitted", *(s.value for s in TERMINAL_STATES), "in_flight")
        }
        return {
            "since": self._since,
            "tasks": tasks,
            "totals": totals,
            "throughput": {
                "last_minute": self._throughput.total(),
                "per_second": self._throughput.per_second(),
                "series": self._throughput.series(),
            },
            "worker_restarts": {
                "total": sum(self._restarts.values()),
                "by_block": {str(b): n for b, n in sorted(self._restarts.items())},
            },
            "backlog": self._lag() if self._lag else None,
        }
