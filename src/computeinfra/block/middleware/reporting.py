"""Reporting: what only a supervisor sees (attempts started, worker restarts) goes to the
analyzer in small batches, never blocking a job. Job counts the analyzer reads from Kafka."""

from __future__ import annotations

import time
from collections.abc import Callable

from computeinfra.analyzer.events import EventKind, JobEvent
from computeinfra.block.jobs import Assignment

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

    def before_dispatch(self, assignment: Assignment) -> None:
        self._add(JobEvent(EventKind.STARTED, assignment.task, self._block, assignment.key))

    def on_worker_restart(self) -> None:
        self._add(JobEvent(EventKind.WORKER_RESTART, None, self._block))

    def on_idle(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_SECONDS:
            self.flush()
