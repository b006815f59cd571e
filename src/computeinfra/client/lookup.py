"""Finding one key's records by reading only the partition the key hashes to, and a job's
state composed from the job topics."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from computeinfra.errors import KafkaError, RequestError
from computeinfra.kafka.clients import TopicMissing, partition_count, reader, watermarks
from computeinfra.kafka.partitioner import partition_for
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    JOB_STATUS_TOPIC,
    PENDING_TOPIC,
    Completion,
    JobState,
    JobStatus,
    decode_completion,
    decode_job_status,
    decode_request,
)

__all__ = [
    "JobLookup",
    "find_last",
    "find_last_in",
    "find_last_of",
    "job_state",
    "job_states",
    "scan",
]

POLL_SECONDS = 0.2
SCAN_TIMEOUT_SECONDS = 60.0
SCAN_BATCH = 500  # records taken per call while scanning
Found = tuple[bytes, float]


Where = tuple[str, int]  # topic, partition


def _partitions(
    consumer: Consumer, topics: tuple[str, ...], raw_keys: set[bytes]
) -> dict[Where, int]:
    """Where ``raw_keys`` live in each topic that exists, with each partition's end; only
    partitions that hold records."""
    ends: dict[Where, int] = {}
    for topic in topics:
        try:
            count = partition_count(consumer, topic)
        except TopicMissing:
            if topic == topics[0]:
                raise
            continue  # a topic an older cluster never created (jobStatus) has nothing to say
        for partition in {partition_for(raw_key, count) for raw_key in raw_keys}:
            tp = TopicPartition(topic, partition)
            low, high = watermarks(consumer, tp)
            if high > low:
                ends[(topic, partition)] = high
    return ends


def scan(consumer: Consumer, starts: dict[Where, int], ends: dict[Where, int]) -> Iterator[Message]:
    """Every record of the partitions in ``ends``, from ``starts`` up to ``ends``. Raises
    ``KafkaError`` if they cannot be read within ``SCAN_TIMEOUT_SECONDS``: an answer from
    part of them would be wrong (a job missed, a key said unknown)."""
    consumer.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in ends])
    left = dict(ends)
    deadline = time.monotonic() + SCAN_TIMEOUT_SECONDS
    # Transaction markers take offsets but are never delivered, so progress is measured
    # by the consumer's positions, not by the offsets of the messages seen.
    while left:
        if time.monotonic() > deadline:
            raise KafkaError(f"could not read {len(left)} partition(s) to their end within "
                             f"{SCAN_TIMEOUT_SECONDS:g} s")  # fmt: skip
        for message in consumer.consume(SCAN_BATCH, POLL_SECONDS):
            if not message.error():
                yield message
        positions = consumer.position([TopicPartition(t, p) for t, p in left])
        left = {(tp.topic, tp.partition): left[(tp.topic, tp.partition)] for tp in positions
                if tp.offset < left[(tp.topic, tp.partition)]}  # fmt: skip


def find_last_of(
    bootstrap: str, topics: tuple[str, ...], keys: Iterable[str]
) -> dict[str, dict[str, Found]]:
    """For each of ``keys``, the value and timestamp (s) of its last record in each of
    ``topics``, read in one pass over the partitions they hash to; topics with no record
    under a key are left out of its entry."""
    wanted = {key.encode(): key for key in keys}
    found: dict[str, dict[str, Found]] = {key: {} for key in wanted.values()}
    consumer = reader(bootstrap, client_id="computeinfra-lookup")
    try:
        ends = _partitions(consumer, topics, set(wanted))
        for message in scan(consumer, dict.fromkeys(ends, OFFSET_BEGINNING), ends):
            key = wanted.get(message.key() or b"")
            if key is not None:
                found[key][message.topic() or ""] = (
                    message.value() or b"",
                    message.timestamp()[1] / 1000,
                )
        return found
    finally:
        consumer.close()


def find_last_in(bootstrap: str, topics: tuple[str, ...], key: str) -> dict[str, Found]:
    """The value and timestamp (s) of the last record under ``key`` in each of ``topics``,
    read in one pass with one consumer; topics with no such record are left out."""
    return find_last_of(bootstrap, topics, [key])[key]


def find_last(bootstrap: str, topic: str, key: str) -> Found | None:
    """The value and timestamp (s) of the last record under ``key`` in ``topic``, if any."""
    return find_last_in(bootstrap, (topic,), key).get(topic)


@dataclass(frozen=True)
class JobLookup:
    """What Kafka knows of a key: ``state`` and the record it comes from."""

    key: str
    state: JobState | None  # None: no trace of the key anywhere
    completion: Completion | None = None
    status: JobStatus | None = None
    task: str | None = None
    submitted_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "state": self.state or "unknown"}
        if self.task is not None:
            data["task"] = self.task
        if self.submitted_at is not None:
            data["submitted_at"] = self.submitted_at
        if self.status is not None:
            data["status"] = self.status.model_dump(mode="json")
            if self.status.progress is not None and self.state is JobState.RUNNING:
                data["progress"] = self.status.progress.model_dump(mode="json")
        if self.completion is not None:
            data["completion"] = self.completion.model_dump(mode="json")
        return data


def _pending(key: str, found: Found) -> JobLookup:
    value, timestamp = found
    try:
        request = decode_request(value)
    except RequestError:  # an unreadable request is still queued; it will be rejected
        return JobLookup(key, JobState.PENDING, submitted_at=timestamp)
    return JobLookup(
        key, JobState.PENDING, task=request.task, submitted_at=request.submitted_at or timestamp
    )


def _terminal(found: Found | None) -> bool:
    try:
        return found is not None and decode_job_status(found[0]).terminal
    except ValueError:
        return False


def job_state(bootstrap: str, key: str) -> JobLookup:
    """A key's state: its completion (authoritative), else its last ``jobStatus``, else
    ``pending`` if its request is queued, else unknown (``state`` is ``None``)."""
    return job_states(bootstrap, [key])[0]


def job_states(bootstrap: str, keys: Sequence[str]) -> list[JobLookup]:
    """``job_state`` of each of ``keys``, in order, each partition read once for them all."""
    keys = list(dict.fromkeys(keys))
    found = find_last_of(bootstrap, (COMPLETED_TOPIC, JOB_STATUS_TOPIC, PENDING_TOPIC), keys)
    # The terminal status commits in the completion's transaction; seeing one without the
    # other means that transaction landed between reading the two topics' ends.
    late = [k for k, f in found.items()
            if COMPLETED_TOPIC not in f and _terminal(f.get(JOB_STATUS_TOPIC))]  # fmt: skip
    if late:
        for key, again in find_last_of(bootstrap, (COMPLETED_TOPIC,), late).items():
            found[key].update(again)
    return [_state(key, found[key]) for key in keys]


def _state(key: str, found: dict[str, Found]) -> JobLookup:
    if COMPLETED_TOPIC in found:
        completion = decode_completion(found[COMPLETED_TOPIC][0])
        return JobLookup(
            key,
            JobState(completion.status.value),
            completion=completion,
            task=completion.task,
            submitted_at=completion.submitted_at,
        )
    if JOB_STATUS_TOPIC in found:
        try:
            status = decode_job_status(found[JOB_STATUS_TOPIC][0])
        except ValueError:
            status = None
        if status is not None:
            return JobLookup(
                key, status.state, status=status, task=status.task, submitted_at=status.submitted_at
            )
    if PENDING_TOPIC in found:
        return _pending(key, found[PENDING_TOPIC])
    return JobLookup(key, None)
