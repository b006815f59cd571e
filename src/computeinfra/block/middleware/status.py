"""Job status: a job's lifecycle on the compacted ``jobStatus`` topic, when it says more
than the completion will.

Every status goes out in the supervisor's transactions, so a reader sees the steps of a
job in the order they happened, and compaction keeps the last one: the latest state.
``running`` is published once an attempt was sent to a worker ``running_after`` ago
(``COMPUTEINFRA_RUNNING_STATUS_AFTER_MS``), in a transaction at most ``running_after``
later (an attempt still queued for a worker is not running, however long it waits). The
terminal status goes with the completion, in the same transaction, when a ``running`` may
be on the topic for the key: this block published one, or another owner of the record
might have (``on_inherited``: ``Assignment.inherited``; or a job this block let go). A job
shorter than that goes from ``pending`` to its completion with no status at all, as
Celery's default does.

Why: the broker's work and a transaction's time grow with the partitions it writes to.
Writing a status per job doubled them (``completedJobs`` and ``jobStatus``), and a
``running`` for every job in flight at a commit put most jobs' keys on both. Measured at
600 jobs/s (issue #13): a transaction's p50 from 44 to 25 ms, its mean from 66 to 30 ms,
and librdkafka's 20 ms ``CONCURRENT_TRANSACTIONS`` retries from 0.6 to 0.06 a transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from computeinfra.block.jobs import Assignment
from computeinfra.block.records import OutboxRecord
from computeinfra.protocol import (
    JOB_STATUS_TOPIC,
    Completion,
    JobState,
    JobStatus,
    Progress,
    encode_job_status,
)

from . import Middleware

__all__ = ["RUNNING_AFTER_SECONDS", "StatusPublisher", "running_status", "terminal_status"]

RUNNING_AFTER_SECONDS = 0.5


def running_status(
    assignment: Assignment,
    block: int,
    node: str | None,
    started_at: float,
    progress: Progress | None = None,
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
        progress=progress,
        at=started_at if progress is None else progress.at,
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
    """Publishes ``running`` for attempts a worker has had longer than ``running_after``
    seconds, and the terminal state with a completion whose ``running`` may be on the topic.

    ``block`` and ``node`` say where the job runs.
    """

    def __init__(
        self, block: int, node: str | None = None, running_after: float = RUNNING_AFTER_SECONDS
    ) -> None:
        self._block = block
        self._node = node
        self._after = running_after
        # By key: attempts queued for the workers or running, not shown yet, and when
        # (monotonic) to look at them again. A look finds when the attempt was sent to a
        # worker (``commit_records``): one still queued is not running, whatever it waited.
        self._waiting: dict[str, tuple[Assignment, float]] = {}
        self._due: float | None = None  # at or before the earliest look
        # Keys whose running may be on the topic: the terminal state must replace it. A job
        # let go and never back stays here; a few bytes for each of those.
        self._shown: set[str] = set()
        # By key: progress a running attempt told, for the next transaction. Only the last
        # one told is kept, so a task saying it often costs one record per transaction.
        self._progress: dict[str, tuple[Assignment, Progress, float]] = {}

    def on_progress(self, assignment: Assignment, progress: Progress, started_at: float) -> None:
        self._progress[assignment.key] = (assignment, progress, started_at)
        self._look_at(time.monotonic())

    def on_inherited(self, key: str) -> None:
        self._shown.add(key)  # its previous reader may have shown it running

    def before_dispatch(self, assignment: Assignment) -> None:
        look = time.monotonic() + self._after
        self._waiting[assignment.key] = (assignment, look)
        self._look_at(look)

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        # Asked again for the same completion when another middleware failed (or the answer
        # was too large): the answer is the same, so nothing changes here until it commits.
        key = completion.key
        self._waiting.pop(key, None)  # answered: its running is never needed now
        self._progress.pop(key, None)
        if key not in self._shown:
            return ()  # nothing on the topic to replace: the completion says it all
        status = terminal_status(completion)
        return [OutboxRecord(JOB_STATUS_TOPIC, key.encode(), encode_job_status(status))]

    def after_completion(self, completion: Completion) -> None:
        self._shown.discard(completion.key)

    def records_due(self) -> float | None:
        return self._due

    def commit_records(self, in_hand: Mapping[str, float | None]) -> Sequence[OutboxRecord]:
        # Only jobs still held: one let go (a rebalance, a round that ended) may have been
        # answered by its new owner already, and a running after that would stay for good.
        # It may also be shown running by that owner, and come back: it is marked shown.
        now, wall = time.monotonic(), time.time()
        records = self._progress_records(in_hand)
        self._due = None
        for key, (assignment, look) in list(self._waiting.items()):
            if key not in in_hand:
                del self._waiting[key]
                self._shown.add(key)
            elif look > now:
                self._look_at(look)
            elif (started := in_hand[key]) is not None and started <= wall - self._after:
                del self._waiting[key]
                self._shown.add(key)
                running = running_status(assignment, self._block, self._node, started)
                records.append(
                    OutboxRecord(JOB_STATUS_TOPIC, key.encode(), encode_job_status(running))
                )
            else:  # still queued: look again a while on; sent lately: once it ran that long
                look = now + (self._after if started is None else started + self._after - wall)
                self._waiting[key] = (assignment, look)
                self._look_at(look)
        return records

    def _progress_records(self, in_hand: Mapping[str, float | None]) -> list[OutboxRecord]:
        """A ``running`` with its progress for each job that told some and is still held
        (shown running, then: its terminal status replaces it)."""
        told, self._progress = self._progress, {}
        records = []
        for key, (assignment, progress, started) in told.items():
            if key not in in_hand:
                continue
            self._waiting.pop(key, None)
            self._shown.add(key)
            running = running_status(assignment, self._block, self._node, started, progress)
            records.append(OutboxRecord(JOB_STATUS_TOPIC, key.encode(), encode_job_status(running)))
        return records

    def _look_at(self, look: float) -> None:
        self._due = look if self._due is None else min(self._due, look)
