"""Supervisor middleware: cross-cutting policies as hooks, one policy per module.

Like Dramatiq's middleware, each hook is called in order for every job; the supervisor's
loop stays free of policy branches. Hooks that decide something return ``None`` for
"no opinion"; the first answer wins.

- ``retries.RetryPolicy``: failed attempts are retried with exponential backoff;
- ``dead_letter.DeadLetterFailures``: a job that fails for good is copied to ``deadJobs``;
- ``reporting.AnalyzerReporter``: lifecycle events go to the analyzer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from computeinfra.protocol import Completion

if TYPE_CHECKING:
    from computeinfra.block.jobs import Assignment, Failure, Forward
    from computeinfra.block.transaction import OutboxRecord
    from computeinfra.errors import RequestError

__all__ = ["Middleware", "MiddlewareChain"]


class Middleware:
    """Base class; override only the hooks a policy needs."""

    def on_received(self, key: str | None, task: str | None) -> None:
        """A record was consumed (valid or not)."""

    def placement(self, assignment: Assignment) -> Forward | RequestError | None:
        """Where a valid job runs: ``None`` here, a ``Forward`` to another topic, or a
        ``RequestError`` that rejects it (no block anywhere can run it)."""
        return None

    def before_dispatch(self, assignment: Assignment) -> None:
        """An attempt is about to be sent to the worker."""

    def on_attempt_failed(self, assignment: Assignment, failure: Failure) -> None:
        """An attempt failed: the task raised, the worker died, or it ran out of time."""

    def retry_delay(self, assignment: Assignment, failure: Failure) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up."""
        return None

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        """Records to publish in the same transaction as ``completion``."""
        return ()

    def before_commit(self) -> None:
        """A transaction of answers is about to commit: flush what must land before them."""

    def on_worker_restart(self) -> None:
        """The worker process died (or was killed) and is being restarted."""

    def after_completion(self, completion: Completion) -> None:
        """The terminal completion was committed."""

    def on_idle(self) -> None:
        """The consumer polled and found nothing; a moment for periodic work."""


class MiddlewareChain(Middleware):
    """Calls every middleware in order."""

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        self.middleware = tuple(middleware)

    def on_received(self, key: str | None, task: str | None) -> None:
        for m in self.middleware:
            m.on_received(key, task)

    def placement(self, assignment: Assignment) -> Forward | RequestError | None:
        for m in self.middleware:
            decision = m.placement(assignment)
            if decision is not None:
                return decision
        return None

    def before_dispatch(self, assignment: Assignment) -> None:
        for m in self.middleware:
            m.before_dispatch(assignment)

    def on_attempt_failed(self, assignment: Assignment, failure: Failure) -> None:
        for m in self.middleware:
            m.on_attempt_failed(assignment, failure)

    def retry_delay(self, assignment: Assignment, failure: Failure) -> float | None:
        for m in self.middleware:
            delay = m.retry_delay(assignment, failure)
            if delay is not None:
                return delay
        return None

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        return [r for m in self.middleware for r in m.extra_records(completion, request_value)]

    def before_commit(self) -> None:
        for m in self.middleware:
            m.before_commit()

    def on_worker_restart(self) -> None:
        for m in self.middleware:
            m.on_worker_restart()

    def after_completion(self, completion: Completion) -> None:
        for m in self.middleware:
            m.after_completion(completion)

    def on_idle(self) -> None:
        for m in self.middleware:
            m.on_idle()
