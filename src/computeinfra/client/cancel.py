"""Cancelling jobs: a ``cancelJobs`` record per key, for the jobs that have not completed.

Each key is looked up first (``lookup.job_state``): an unknown key is an error and nothing
is written; a job that completed keeps its completion, and the outcome says so. Every
block reads the cancels (``block/cancels.py``): a job waiting never runs, one running is
stopped, and its one completion says ``cancelled`` (unless it completed before its block
read the cancel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError as RawKafkaError
from confluent_kafka import Message, TopicPartition

from computeinfra.errors import KafkaError, RequestError, UnknownJob
from computeinfra.kafka.clients import (
    METADATA_TIMEOUT_SECONDS,
    make_consumer,
    make_producer,
    partition_count,
    watermarks,
)
from computeinfra.protocol import (
    CANCEL_TOPIC,
    PENDING_TOPIC,
    CancelRequest,
    Completion,
    JobState,
    decode_request,
    encode_cancel,
)

from .lookup import JobLookup, Where, job_states, scan

__all__ = ["CancelOutcome", "cancel_jobs", "cancel_unfinished", "unfinished_keys"]

FLUSH_TIMEOUT_SECONDS = 30.0
UNFINISHED = (JobState.PENDING, JobState.RUNNING)


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did to one job: ``requested`` (it was ``state`` then: pending or
    running), or nothing, since it had completed (``completion``)."""

    key: str
    state: JobState
    requested: bool
    completion: Completion | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "state": self.state.value}
        data["cancel"] = "requested" if self.requested else "completed already"
        if self.completion is not None:
            data["completion"] = self.completion.model_dump(mode="json")
        return data


def _outcome(found: JobLookup) -> CancelOutcome:
    assert found.state is not None
    if found.completion is not None:
        return CancelOutcome(found.key, found.state, False, found.completion)
    return CancelOutcome(found.key, found.state, True)


def cancel_jobs(
    bootstrap: str, keys: Sequence[str], *, reason: str | None = None
) -> list[CancelOutcome]:
    """Cancel each of ``keys``. Raises ``UnknownJob`` (writing nothing) if a key names no
    job, ``KafkaError`` if the broker did not take a cancel."""
    found = job_states(bootstrap, keys)
    unknown = [f.key for f in found if f.state is None]
    if unknown:
        raise UnknownJob(unknown)
    outcomes = [_outcome(f) for f in found]
    _send(bootstrap, [f for f, o in zip(found, outcomes, strict=True) if o.requested], reason)
    return outcomes


def cancel_unfinished(
    bootstrap: str,
    group: str,
    *,
    task: str | None = None,
    state: JobState | None = None,
    reason: str | None = None,
) -> list[CancelOutcome]:
    """Cancel every job not completed (of ``task``, in ``state``: pending or running, if
    given), as found on ``pendingJobs`` from the blocks' committed offsets on."""
    if state is not None and state not in UNFINISHED:
        raise RequestError(
            f"only pending or running jobs can be cancelled, not {state}", field="state"
        )
    found = job_states(bootstrap, unfinished_keys(bootstrap, group, task=task))
    # Rechecked: a key used again may name another task's job now.
    wanted = [
        f for f in found
        if f.state in UNFINISHED and (state is None or f.state is state)
        and (task is None or f.task == task)
    ]  # fmt: skip
    outcomes = [_outcome(f) for f in wanted]
    _send(bootstrap, wanted, reason)
    return outcomes


def unfinished_keys(bootstrap: str, group: str, *, task: str | None = None) -> list[str]:
    """The keys of the requests on ``pendingJobs`` at or past the committed offsets of the
    blocks' ``group`` (of ``task``, if given): every job not answered is among them (some
    answered out of order are too; ``job_states`` tells them apart). A job passed to a
    lane topic (placement middleware) is not."""
    # The group's id only reads its committed offsets: this consumer never joins it.
    consumer = make_consumer(bootstrap, group, client_id="computeinfra-cancel-scan")
    try:
        count = partition_count(consumer, PENDING_TOPIC)
        tps = [TopicPartition(PENDING_TOPIC, p) for p in range(count)]
        starts: dict[Where, int] = {}
        ends: dict[Where, int] = {}
        for tp in consumer.committed(tps, timeout=METADATA_TIMEOUT_SECONDS):
            low, high = watermarks(consumer, tp)
            start = max(tp.offset, low)  # never committed (-1001): from its beginning
            if high > start:
                starts[(tp.topic, tp.partition)], ends[(tp.topic, tp.partition)] = start, high
        keys = (_key_of(m, task) for m in scan(consumer, starts, ends))
        return list(dict.fromkeys(k for k in keys if k is not None))
    finally:
        consumer.close()


def _key_of(message: Message, task: str | None) -> str | None:
    key = message.key()
    if not key:
        return None
    if task is not None:
        try:
            if decode_request(message.value() or b"").task != task:
                return None
        except RequestError:  # it will be rejected; it is no job of ``task``
            return None
    return key.decode(errors="replace")


def _send(bootstrap: str, jobs: list[JobLookup], reason: str | None) -> None:
    """A cancel for each of ``jobs``, naming the submission it was found as (so that a job
    resubmitted later under its key is not cancelled)."""
    if not jobs:
        return
    failures: list[str] = []

    def delivered(err: RawKafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{(msg.key() or b'').decode(errors='replace')}: {err.str()}")

    producer = make_producer(bootstrap, client_id="computeinfra-cancel")
    for job in jobs:
        value = encode_cancel(CancelRequest(reason=reason, submitted_at=job.submitted_at))
        producer.produce(CANCEL_TOPIC, key=job.key.encode(), value=value, on_delivery=delivered)
    left = producer.flush(FLUSH_TIMEOUT_SECONDS)
    if failures or left:
        detail = "; ".join(failures) or f"{left} not acknowledged in {FLUSH_TIMEOUT_SECONDS} s"
        raise KafkaError(f"could not write every cancel: {detail}")
