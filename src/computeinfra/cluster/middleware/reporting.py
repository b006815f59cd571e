"""Reporting: lifecycle events go to the analyzer in small batches, never blocking a job."""

from __future__ import annotations

import time
from collections.abc import Callable

from computeinfra.cluster.events import EventKind, JobEvent
from computeinfra.cluster.jobs import Assignment, Failure
from computeinfra.protocol import Completion

from . import Middleware

__all__ = ["AnalyzerReporter"]

EventSink = Callable[[list[JobEvent]], None]
FLUSH_EVERY_EVENTS = 64
FLUSH_EVERY_SECONDS = 0.5


class AnalyzerReporter(Middleware):
    """Buffers events and hands them to ``sink`` (fire-and-forget) in batches."""

    def __init__(self, sink: EventSink, block: int) -> None:
        self._sink = sink
        self._block = block
        self._buffer: list[JobEvent] = []
        self._last_flush = time.monotonic()
        self._first_started: dict[str, float] = {}

    def _add(self, event: JobEvent) -> None:
        self._buffer.append(event)
        due = time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS
        if due or len(self._buffer) >= FLUSH_EVERY_EVENTS:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._sink(batch)
        self._last_flush = time.monotonic()

    def on_received(self, key: str | None, task: str | None) -> None:
        self._add(JobEvent(EventKind.RECEIVED, task, self._block, key))

    def before_dispatch(self, assignment: Assignment) -> None:
        now = time.time()
        self._first_started.setdefault(assignment.key, now)
        self._add(JobEvent(EventKind.STARTED, assignment.task, self._block, assignment.key, at=now))

    def on_attempt_failed(self, assignment: Assignment, failure: Failure) -> None:
        if failure.lost_worker:
            self._add(
                JobEvent(EventKind.WORKER_RESTART, assignment.task, self._block, assignment.key)
            )

    def after_completion(self, completion: Completion) -> None:
        first_start = self._first_started.pop(completion.key, None)
        wait = None
        if first_start is not None and completion.submitted_at is not None:
            wait = max(first_start - completion.submitted_at, 0.0)
        run = None
        if completion.started_at is not None:
            run = max(completion.finished_at - completion.started_at, 0.0)
        self._add(
            JobEvent(
                EventKind.COMPLETED,
                completion.task,
                self._block,
                completion.key,
                status=completion.status.value,
                queue_wait=wait,
                run_time=run,
            )
        )

    def on_idle(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS:
            self.flush()
