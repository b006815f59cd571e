"""Retries: a failed attempt is tried again, with exponential backoff, until the job's
``max_attempts`` are spent.

What is worth retrying: the worker process died, the attempt ran out of time, or the task
raised ``computeinfra.Retry`` (or an exception its ``retry_on`` lists). The first loss of a
worker is retried as soon as the worker is back; every other retry backs off. Any other exception
is the job's answer at once, and an invalid request is never retried (it never gets here).
"""

from __future__ import annotations

from computeinfra.block.jobs import Assignment, Failure
from computeinfra.protocol import FailureKind

from . import Middleware

__all__ = ["RetryPolicy", "backoff_seconds"]


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Delay after failed attempt number ``attempt`` (1-based): base, 2·base, 4·base … cap."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    return float(min(base * 2 ** (attempt - 1), cap))


class RetryPolicy(Middleware):
    def __init__(self, base_seconds: float, cap_seconds: float) -> None:
        if base_seconds < 0 or cap_seconds < base_seconds:
            raise ValueError("need 0 <= base_seconds <= cap_seconds")
        self.base = base_seconds
        self.cap = cap_seconds

    def retry_delay(self, assignment: Assignment, failure: Failure) -> float | None:
        retryable = failure.outcome is None or failure.outcome.retryable
        if not retryable or assignment.attempt >= assignment.max_attempts:
            return None
        if failure.type == FailureKind.WORKER_LOST and assignment.attempt == 1:
            # Ray restarts the process before the job can run again, and that restart is
            # already the pause (bench: 0.5 s of a worker's 1.1 s resume was this backoff).
            # From the second loss on, the backoff applies, so a job that keeps killing its
            # worker is not retried in a tight loop. Not after a time limit: the supervisor
            # has only asked Ray to kill that worker, and a call sent at once can still
            # reach the old process and die with it.
            return 0.0
        return backoff_seconds(assignment.attempt, self.base, self.cap)
