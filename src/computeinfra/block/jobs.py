"""The cluster's in-memory view of a job between intake and completion (not wire types)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from computeinfra.protocol import ErrorInfo, FailureKind, Output, Status

__all__ = [
    "Assignment",
    "Failure",
    "Forward",
    "NotRun",
    "Outcome",
    "WorkerLost",
    "judge",
]


class WorkerLost(Exception):
    """The worker process died (killed, crashed, out of memory) before answering."""


@dataclass(frozen=True)
class Assignment:
    """A validated job handed to a worker. ``attempt`` counts from 1."""

    key: str
    task: str
    payload: BaseModel
    result_dir: str
    submitted_at: float | None
    max_attempts: int = 1
    time_limit: float | None = 600.0  # seconds per attempt; None: no limit
    attempt: int = 1
    # Its record may have been read before: by the partition's previous owner, by this
    # block before it restarted, or by the block that handed it over. Whoever read it may
    # have published its ``running``.
    inherited: bool = False

    def next_attempt(self) -> Assignment:
        return replace(self, attempt=self.attempt + 1)


@dataclass(frozen=True)
class NotRun:
    """The attempt is not counted: the worker skipped the call it was in (a take-back whose
    answer came too late for its supervisor to wait for it), or ``alone``: its call of
    several jobs failed outside their tasks, so it is sent again in a call of its own, where
    a failure is its alone."""

    alone: bool = False


@dataclass(frozen=True)
class Forward:
    """Hand the request, unchanged, to ``topic``: blocks that can run it consume there.

    The forwarded record and the consumed offset commit in one transaction, so the job is
    neither lost nor doubled on the way.
    """

    topic: str
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What a worker reports for one attempt."""

    status: Status
    started_at: float
    finished_at: float = field(default_factory=time.time)
    outputs: tuple[Output, ...] = ()
    result: Any = None
    error: ErrorInfo | None = None
    retryable: bool = False


@dataclass(frozen=True)
class Failure:
    """Why an attempt did not succeed, as the retry policy sees it."""

    type: FailureKind | str  # a kind of ours, or the task's exception class
    message: str
    outcome: Outcome | None = None  # what the worker reported, when it could report

    @property
    def lost_worker(self) -> bool:
        """The worker process is gone (died or was killed) and is being restarted."""
        return self.outcome is None

    def final_outcome(self, started_at: float) -> Outcome:
        if self.outcome is not None:
            return self.outcome
        return Outcome(
            status=Status.FAILED,
            started_at=started_at,
            error=ErrorInfo(type=self.type, message=self.message),
        )


def judge(result: Outcome | Failure) -> Outcome | Failure:
    """A task's own exception is a failed attempt, which the retry policy may try again."""
    if isinstance(result, Outcome) and result.status is Status.FAILED and result.error:
        return Failure(result.error.type, result.error.message, result)
    return result
