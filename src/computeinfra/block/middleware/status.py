"""Job status: each lifecycle step of a job goes to the compacted ``jobStatus`` topic.

Every status goes out in the supervisor's transactions, so a reader sees the steps of a
job in the order they happened, and compaction keeps the last one: the latest state.
``running`` is recorded when an attempt is sent to a worker and published in the next
transaction, before its answers; a job answered in that same transaction gets only its
terminal status (a job of a few milliseconds is never seen running, as with Celery's
default). The terminal status goes with the completion, in the same transaction.

Before, ``running`` went through a producer of its own, flushed before each transaction:
a round trip per transaction and a produce request per few jobs on the broker, which
shares the cores with the blocks (measured in issue #13: supervisor CPU -10 to -15%).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from computeinfra.block.jobs import Assignment
from computeinfra.block.transaction import OutboxRecord
from computeinfra.protocol import (
    JOB_STATUS_TOPIC,
    Completion,
    JobState,
    JobStatus,
    encode_job_status,
)

from . import Middleware

__all__ = ["StatusPublisher", "running_status", "terminal_status"]


def running_status(
    assignment: Assignment, block: int, node: str | None, started_at: float
) -> JobStatus:
    return JobStatus(
        key=assignment.key,
        state=JobState.RUNNING,
        task=assignment.task,
        result_dir=assignment.result_dir,
        attempt=assignment.attempt,
        max_attempts=assignment.max_attempts,
        block=block,
        node=node,
        submitted_at=assignment.submitted_at,
        started_at=started_at,
        at=started_at,
    )


def terminal_status(completion: Completion) -> JobStatus:
    return JobStatus(
        key=completion.key,
        state=completion.status,
        task=completion.task,
        result_dir=completion.result_dir,
        attempt=completion.attempts,
        block=completion.block,
        node=completion.node,
        submitted_at=completion.submitted_at,
        started_at=completion.started_at,
        finished_at=completion.finished_at,
        error=completion.error,
        at=completion.finished_at,
    )


class StatusPublisher(Middleware):
    """Records ``running`` on dispatch, publishes it with the next transaction unless the
    job was answered in it, and the terminal state with each completion.

    ``block`` and ``node`` say where the job runs.
    """

    def __init__(self, block: int, node: str | None = None) -> None:
        self._block = block
        self._node = node
        self._started: dict[str, tuple[Assignment, float]] = {}  # by key: its latest attempt

    def before_dispatch(self, assignment: Assignment) -> None:
        self._started[assignment.key] = (assignment, time.time())

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        self._started.pop(completion.key, None)  # answered: its terminal state says it all
        status = terminal_status(completion)
        return [OutboxRecord(JOB_STATUS_TOPIC, completion.key.encode(), encode_job_status(status))]

    def commit_records(self, in_hand: Collection[str]) -> Sequence[OutboxRecord]:
        # Only jobs still held: one let go (a rebalance, a round that ended) may have been
        # answered by its new owner already, and a running after that would stay for good.
        started, self._started = self._started, {}
        return [
            OutboxRecord(
                JOB_STATUS_TOPIC,
                key.encode(),
                encode_job_status(running_status(assignment, self._block, self._node, at)),
            )
            for key, (assignment, at) in started.items()
            if key in in_hand
        ]
