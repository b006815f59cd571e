"""Job status: each lifecycle step of a job goes to the compacted ``jobStatus`` topic.

``running`` is produced (never awaited) when an attempt is sent to the worker, through a
producer of its own, outside the supervisor's transactions: a transaction holds answers only.
Before a transaction of answers commits, that producer is flushed, so every ``running``
record is on the partition before the terminal status, which is published with the
completion in the same transaction. Compaction keeps the last value per key, which is
therefore the latest state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from computeinfra.block.jobs import Assignment
from computeinfra.block.transaction import OutboxRecord
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import (
    JOB_STATUS_TOPIC,
    Completion,
    JobState,
    JobStatus,
    encode_job_status,
)

from . import Middleware

__all__ = ["StatusProducer", "StatusPublisher", "running_status", "terminal_status"]

_log = logging.getLogger("computeinfra.status")
FLUSH_TIMEOUT_SECONDS = 10.0


class StatusProducer(Protocol):
    """The part of a confluent-kafka ``Producer`` this middleware uses."""

    def produce(
        self, topic: str, value: bytes | str | None = None, key: bytes | str | None = None
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


def running_status(assignment: Assignment, block: int, node: str | None) -> JobStatus:
    now = time.time()
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
        started_at=now,
        at=now,
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
    """Publishes ``running`` on dispatch and the terminal state with each completion.

    ``producer`` is made on first use from ``bootstrap`` unless one is given (a test may
    pass its own); ``block`` and ``node`` say where the job runs.
    """

    def __init__(
        self,
        bootstrap: str,
        block: int,
        node: str | None = None,
        producer: StatusProducer | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._block = block
        self._node = node
        self._producer = producer
        self._unflushed = 0

    def _out(self) -> StatusProducer:
        producer = self._producer
        if producer is None:
            producer = make_producer(
                self._bootstrap, client_id=f"computeinfra-status-{self._block}"
            )
            self._producer = producer
        return producer

    def before_dispatch(self, assignment: Assignment) -> None:
        status = running_status(assignment, self._block, self._node)
        producer = self._out()
        try:
            producer.produce(
                JOB_STATUS_TOPIC, value=encode_job_status(status), key=assignment.key.encode()
            )
        except BufferError:
            # The local queue is full (broker away); a missing "running" only delays what a
            # reader sees, while blocking here would delay the job itself.
            _log.warning(
                "block %s: status queue full, skipping running of %s", self._block, assignment.key
            )
            return
        self._unflushed += 1
        producer.poll(0)

    def before_commit(self) -> None:
        if not self._unflushed or self._producer is None:
            return
        left = self._producer.flush(FLUSH_TIMEOUT_SECONDS)
        if left:
            _log.warning("block %s: %d running status(es) not delivered yet", self._block, left)
        self._unflushed = left

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        status = terminal_status(completion)
        return [OutboxRecord(JOB_STATUS_TOPIC, completion.key.encode(), encode_job_status(status))]

    def on_idle(self) -> None:
        if self._producer is not None:
            self._producer.poll(0)
