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
from confluent_kafka import Message

from computeinfra.errors import KafkaError, UnknownJob
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import (
    CANCEL_TOPIC,
    CancelRequest,
    Completion,
    JobState,
    encode_cancel,
)

from .lookup import JobLookup, job_state

__all__ = ["CancelOutcome", "cancel_jobs"]

FLUSH_TIMEOUT_SECONDS = 30.0


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
    found = [job_state(bootstrap, key) for key in dict.fromkeys(keys)]
    unknown = [f.key for f in found if f.state is None]
    if unknown:
        raise UnknownJob(unknown)
    outcomes = [_outcome(f) for f in found]
    _send(bootstrap, [o.key for o in outcomes if o.requested], CancelRequest(reason=reason))
    return outcomes


def _send(bootstrap: str, keys: list[str], cancel: CancelRequest) -> None:
    if not keys:
        return
    failures: list[str] = []

    def delivered(err: RawKafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{(msg.key() or b'').decode(errors='replace')}: {err.str()}")

    producer = make_producer(bootstrap, client_id="computeinfra-cancel")
    value = encode_cancel(cancel)
    for key in keys:
        producer.produce(CANCEL_TOPIC, key=key.encode(), value=value, on_delivery=delivered)
    left = producer.flush(FLUSH_TIMEOUT_SECONDS)
    if failures or left:
        detail = "; ".join(failures) or f"{left} not acknowledged in {FLUSH_TIMEOUT_SECONDS} s"
        raise KafkaError(f"could not write every cancel: {detail}")
