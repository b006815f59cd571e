"""The supervisor: consumes ``pendingJobs``, validates, drives its worker, publishes answers.

Every record gets exactly one answer: its completion (or dead letter) and its consumed offset
are committed in one Kafka transaction (see ``outbox.py``). Partitions change hands only
between jobs, because the supervisor does not poll while a job runs; the poll interval the
group allows is sized to the longest job instead (see ``max_poll_interval_ms``). Each
supervisor is a static group member, so a restarted one takes its partitions straight back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from computeinfra.config import Settings
from computeinfra.errors import RequestError
from computeinfra.kafka.clients import make_consumer
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    DEAD_TOPIC,
    MAX_ATTEMPTS_CAP,
    MAX_TIME_LIMIT_SECONDS,
    PENDING_TOPIC,
    Completion,
    Status,
    encode_completion,
    key_text,
)
from computeinfra.tasks.registry import TaskRegistry, load_registry

from .intake import admit
from .jobs import Assignment, Failure, Outcome, WorkerLost, complete, reject
from .middleware import Middleware, MiddlewareChain
from .outbox import Outbox, OutboxRecord, PartitionLost
from .worker import WorkerPort

__all__ = ["Supervisor"]

_log = logging.getLogger("computeinfra.supervisor")
# How long the group waits for a silent member before giving its partitions to others.
SESSION_TIMEOUT_MS = 10_000
WORKER_BACK_TIMEOUT_SECONDS = 120.0
STATUS_WORKER_TIMEOUT_SECONDS = 5.0


def max_poll_interval_ms(settings: Settings) -> int:
    """Long enough for the longest job: every attempt at the longest limit, plus backoffs."""
    per_attempt = MAX_TIME_LIMIT_SECONDS + settings.retry_backoff_max + WORKER_BACK_TIMEOUT_SECONDS
    return int(min(MAX_ATTEMPTS_CAP * per_attempt * 1000, 86_400_000))


class Supervisor:
    """One per working block. ``start()`` runs the consume loop on a background thread."""

    def __init__(
        self,
        settings: Settings,
        block: int,
        worker: WorkerPort,
        middleware: Sequence[Middleware] = (),
        *,
        node: str | None = None,
        member_id: str | None = None,
        registry: TaskRegistry | None = None,
        topics: Sequence[str] = (PENDING_TOPIC,),
    ) -> None:
        self.settings = settings
        self.block = block
        self.node = node
        self.member_id = member_id or f"{settings.namespace}-supervisor-{block}"
        self.worker = worker
        self.hooks = MiddlewareChain(middleware)
        self.registry = registry or load_registry(settings.task_modules)
        self.topics = tuple(topics)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._outbox: Outbox | None = None
        self.state = "starting"
        self.job: str | None = None
        self.partitions: list[int] = []
        self.processed = 0
        self.worker_pid: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"supervisor-{self.block}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the job in hand, leave the group, and return."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        # Asked afresh: Ray may have restarted an idle worker without this supervisor noticing.
        self._refresh_worker_pid(STATUS_WORKER_TIMEOUT_SECONDS)
        return {
            "block": self.block,
            "node": self.node,
            "worker_pid": self.worker_pid,
            "state": self.state,
            "job": self.job,
            "partitions": list(self.partitions),
            "processed": self.processed,
        }

    def _run(self) -> None:
        self._refresh_worker_pid()
        self._outbox = Outbox(self.settings.bootstrap_servers, self.member_id)
        self._consumer = make_consumer(
            self.settings.bootstrap_servers,
            self.settings.group,
            client_id=self.member_id,
            **{
                "group.instance.id": self.member_id,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "partition.assignment.strategy": "cooperative-sticky",
                "max.poll.interval.ms": max_poll_interval_ms(self.settings),
            },
        )
        self._consumer.subscribe(
            list(self.topics), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self.state = "idle"
        try:
            self._loop(self._consumer)
        finally:
            self.state = "stopping"
            self._consumer.close()
            self._outbox.close()
            self.state = "stopped"

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.partitions = sorted({*self.partitions, *(tp.partition for tp in partitions)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        self.partitions = [p for p in self.partitions if p not in gone]

    def _loop(self, consumer: Consumer) -> None:
        while not self._stop.is_set():
            message = consumer.poll(self.settings.poll_seconds)
            if message is None:
                self.hooks.on_idle()
                continue
            if message.error():
                _log.warning("consume error on block %s: %s", self.block, message.error())
                continue
            try:
                self._handle(message)
            finally:
                self.state, self.job = "idle", None

    # -- one record --------------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        raw_key: bytes | None = message.key()
        if not raw_key:
            self.hooks.on_received(None, None)
            self._answer(message, self._dead_letter(message), None)
            return
        self.job = key_text(raw_key)
        _ts_type, ts_ms = message.timestamp()
        record_time = ts_ms / 1000 if ts_ms and ts_ms > 0 else None
        try:
            completion = self._complete(raw_key, message.value(), record_time)
        except Exception as exc:  # a bug must still answer the job, never skip or loop on it
            _log.exception("block %s: internal error on %s", self.block, self.job)
            completion = reject(
                self.job,
                RequestError(f"internal error: {exc!r}"),
                task=None,
                result_dir=None,
                submitted_at=record_time,
                block=self.block,
                node=self.node,
            )
        record = OutboxRecord(COMPLETED_TOPIC, raw_key, encode_completion(completion))
        extra = self.hooks.extra_records(completion, message.value())
        self._answer(message, [record, *extra], completion)

    def _complete(
        self, raw_key: bytes, value: bytes | None, record_time: float | None
    ) -> Completion:
        assert self.job is not None
        request, verdict = admit(raw_key, value, record_time, self.registry, self.settings)
        self.hooks.on_received(self.job, request.task if request else None)
        if isinstance(verdict, RequestError):
            return reject(
                self.job,
                verdict,
                task=request.task if request else None,
                result_dir=request.result_dir if request else None,
                submitted_at=(request.submitted_at if request else None) or record_time,
                block=self.block,
                node=self.node,
            )
        return self._execute(verdict)

    def _answer(
        self, message: Message, records: list[OutboxRecord], completion: Completion | None
    ) -> None:
        assert self._outbox is not None and self._consumer is not None
        try:
            self._outbox.commit(self._consumer, message, records)
        except PartitionLost as lost:
            _log.warning(
                "block %s could not answer %s, the group moved on (%s); reading it again",
                self.block,
                self.job,
                lost,
            )
            self._rewind(message)
            return
        self.processed += 1
        if completion is not None:
            self.hooks.after_completion(completion)

    def _execute(self, assignment: Assignment) -> Completion:
        self.state = "busy"
        while True:
            self.hooks.before_dispatch(assignment)
            started = time.time()
            result = self._attempt(assignment)
            if isinstance(result, Outcome):
                return complete(assignment, result, block=self.block, node=self.node)
            failure = result
            self.hooks.on_attempt_failed(assignment, failure)
            delay = self.hooks.retry_delay(assignment, failure)
            if delay is None:
                outcome = failure.final_outcome(started)
                return complete(assignment, outcome, block=self.block, node=self.node)
            self.state = "retry-backoff"
            self._stop.wait(delay)  # a stop request cuts the backoff short, not the job
            self.state = "busy"
            assignment = assignment.next_attempt()

    def _attempt(self, assignment: Assignment) -> Outcome | Failure:
        """Run one attempt; an ``Outcome`` is final, a ``Failure`` may be retried."""
        try:
            outcome = self.worker.submit(assignment).outcome(timeout=assignment.time_limit)
        except WorkerLost as lost:
            self._wait_for_worker()
            message = f"the worker process died during attempt {assignment.attempt}: {lost}"
            return Failure("WorkerLost", message)
        except TimeoutError:
            self.worker.kill()
            self._wait_for_worker()
            message = (
                f"attempt {assignment.attempt} ran past its time limit of "
                f"{assignment.time_limit:g} s; its worker was restarted"
            )
            return Failure("TimeLimitExceeded", message)
        if outcome.status is Status.FAILED and outcome.error is not None:
            return Failure(outcome.error.type, outcome.error.message, outcome)
        return outcome

    def _wait_for_worker(self) -> None:
        """Block until the restarted worker answers, so ``blocks`` shows its new pid."""
        self.state = "restarting-worker"
        self._refresh_worker_pid(WORKER_BACK_TIMEOUT_SECONDS)
        self.state = "busy"

    def _refresh_worker_pid(self, timeout: float = 60.0) -> None:
        try:
            self.worker_pid = int(self.worker.describe(timeout)["pid"])
        except Exception as exc:  # the next submit will surface a real failure
            _log.warning("block %s: worker did not answer: %s", self.block, exc)
            self.worker_pid = None

    def _rewind(self, message: Message) -> None:
        """Read ``message`` again if its partition is still ours once the group settles.

        The group may hand the same partition straight back (a broker restart makes every
        member rejoin); without this the consumer's position would already be past it.
        """
        assert self._consumer is not None
        here = TopicPartition(PENDING_TOPIC, message.partition() or 0, message.offset() or 0)
        # Not assigned here any more: its new owner starts from the committed offset anyway.
        with contextlib.suppress(KafkaException):
            self._consumer.seek(here)

    def _dead_letter(self, message: Message) -> list[OutboxRecord]:
        reason = "the record has no key; every job needs a key to answer to"
        source = f"{message.topic()}/{message.partition()}/{message.offset()}"
        _log.warning("block %s dead-letters %s: %s", self.block, source, reason)
        headers = [
            ("computeinfra.reason", reason.encode()),
            ("computeinfra.source", source.encode()),
        ]
        return [OutboxRecord(DEAD_TOPIC, message.key(), message.value() or b"", headers)]
