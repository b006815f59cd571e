"""Job status: a job's lifecycle on the compacted ``jobStatus`` topic, when it says more
than the completion will.

Every status goes out in the supervisor's transactions, so a reader sees the steps of a
job in the order they happened, and compaction keeps the last one: the latest state.
``running`` is published once an attempt has been with the workers for
``running_after`` (``COMPUTEINFRA_RUNNING_STATUS_AFTER_MS``), in the next transaction. The
terminal status goes with the completion, in the same transaction, when a ``running`` may
be on the topic for the key: this block published one, or another owner of the record
might have (``Assignment.inherited``, or a job this block let go). A job shorter than that
goes from ``pending`` to its completion with no status at all, as Celery's default does.

Why: the broker's work and a transaction's time grow with the partitions it writes to.
Writing a status per job doubled them (``completedJobs`` and ``jobStatus``), and a
``running`` for every job in flight at a commit put most jobs' keys on both. Measured at
600 jobs/s (issue #13): a transaction's p50 from 44 to 25 ms, its mean from 66 to 30 ms,
and librdkafka's 20 ms ``CONCURRENT_TRANSACTIONS`` retries from 0.6 to 0.06 a transaction.
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

__all__ = ["RUNNING_AFTER_SECONDS", "StatusPublisher", "running_status", "terminal_status"]

RUNNING_AFTER_SECONDS = 0.5


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
    """Publishes ``running`` for attempts with the workers longer than ``running_after``
    seconds, and the terminal state with a completion whose ``running`` may be on the topic.

    ``block`` and ``node`` say where the job runs.
    """

    def __init__(
        self, block: int, node: str | None = None, running_after: float = RUNNING_AFTER_SECONDS
    ) -> None:
        self._block = block
        self._node = node
        self._after = running_after
        # By key, oldest first: attempts sent to the workers, not shown yet; when (wall
        # clock, for the status) and since when (monotonic, for the deadline).
        self._started: dict[str, tuple[Assignment, float, float]] = {}
        # Keys whose running may be on the topic: the terminal state must replace it. A job
        # let go and never back stays here; a few bytes for each of those.
        self._shown: set[str] = set()

    def before_dispatch(self, assignment: Assignment) -> None:
        key = assignment.key
        self._started.pop(key, None)  # a retry goes to the end: the dict stays oldest first
        self._started[key] = (assignment, time.time(), time.monotonic())
        if assignment.inherited:
            self._shown.add(key)

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        key = completion.key
        self._started.pop(key, None)  # answered: its running is never needed now
        if key not in self._shown:
            return ()  # nothing on the topic to replace: the completion says it all
        self._shown.discard(key)
        status = terminal_status(completion)
        return [OutboxRecord(JOB_STATUS_TOPIC, key.encode(), encode_job_status(status))]

    def records_due(self) -> float | None:
        oldest = next(iter(self._started.values()), None)
        return None if oldest is None else oldest[2] + self._after

    def commit_records(self, in_hand: Collection[str]) -> Sequence[OutboxRecord]:
        # Only jobs still held: one let go (a rebalance, a round that ended) may have been
        # answered by its new owner already, and a running after that would stay for good.
        # It may also be shown running by that owner, and come back: it is marked shown.
        shown_before = time.monotonic() - self._after
        records: list[OutboxRecord] = []
        for key, (assignment, at, since) in list(self._started.items()):
            if key not in in_hand:
                del self._started[key]
                self._shown.add(key)
            elif since <= shown_before:
                del self._started[key]
                self._shown.add(key)
                status = encode_job_status(running_status(assignment, self._block, self._node, at))
                records.append(OutboxRecord(JOB_STATUS_TOPIC, key.encode(), status))
        return records
