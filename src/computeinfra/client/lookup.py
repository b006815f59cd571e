"""Finding one key's records by reading only the partition the key hashes to, and a job's
state composed from the job topics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from computeinfra.errors import KafkaError, RequestError
from computeinfra.kafka.clients import METADATA_TIMEOUT_SECONDS, partition_count, reader
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

__all__ = ["JobLookup", "find_last", "find_last_in", "job_state"]

POLL_SECONDS = 0.2
SCAN_TIMEOUT_SECONDS = 60.0
Found = tuple[bytes, float]


def _partitions(
    consumer: Consumer, topics: tuple[str, ...], raw_key: bytes
) -> dict[str, tuple[TopicPartition, int]]:
    """Where ``raw_key`` lives in each topic that exists and holds records, with its end."""
    ends: dict[str, tuple[TopicPartition, int]] = {}
    for topic in topics:
        try:
            count = partition_count(consumer, topic)
        except KafkaError:
            if topic == topics[0]:
                raise
            continue  # a topic an older cluster never created (jobStatus) has nothing to say
        tp = TopicPartition(topic, partition_for(raw_key, count))
        low, high = consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_SECONDS)
        if high > low:
            ends[topic] = (tp, high)
    return ends


def find_last_in(bootstrap: str, topics: tuple[str, ...], key: str) -> dict[str, Found]:
    """The value and timestamp (s) of the last record under ``key`` in each of ``topics``,
    read in one pass with one consumer; topics with no such record are left out."""
    consumer = reader(bootstrap, client_id="computeinfra-lookup")
    try:
        raw_key = key.encode()
        ends = _partitions(consumer, topics, raw_key)
        consumer.assign(
            [TopicPartition(t, tp.partition, OFFSET_BEGINNING) for t, (tp, _) in ends.items()]
        )
        found: dict[str, Found] = {}
        deadline = time.monotonic() + SCAN_TIMEOUT_SECONDS
        # Transaction markers take offsets but are never delivered, so progress is measured
        # by the consumer's positions, not by the offsets of the messages seen.
        while ends and time.monotonic() < deadline:
            message = consumer.poll(POLL_SECONDS)
            if message is not None and not message.error() and message.key() == raw_key:
                topic = message.topic() or ""
                found[topic] = (message.value() or b"", message.timestamp()[1] / 1000)
            positions = consumer.position([tp for tp, _ in ends.values()])
            ends = {p.topic: ends[p.topic] for p in positions if p.offset < ends[p.topic][1]}
        return found
    finally:
        consumer.close()


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
    found = find_last_in(bootstrap, (COMPLETED_TOPIC, JOB_STATUS_TOPIC, PENDING_TOPIC), key)
    # The terminal status commits in the completion's transaction; seeing one without the
    # other means that transaction landed between reading the two topics' ends.
    late = COMPLETED_TOPIC not in found and _terminal(found.get(JOB_STATUS_TOPIC))
    if late and (again := find_last(bootstrap, COMPLETED_TOPIC, key)):
        found[COMPLETED_TOPIC] = again
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
