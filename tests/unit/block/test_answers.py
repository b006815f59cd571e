"""Answers: a completion too large for Kafka becomes its job's ``ResultTooLarge`` failure
instead of a record that fails its whole transaction forever (issue #13, defect 3)."""

from __future__ import annotations

from typing import Any

import pytest

from computeinfra.block.answers import MAX_ANSWER_RECORD_BYTES, complete
from computeinfra.block.jobs import Assignment, Outcome
from computeinfra.block.middleware import HookError, Middleware, MiddlewareChain
from computeinfra.block.middleware.dead_letter import DeadLetterFailures
from computeinfra.block.refusals import smaller as _smaller
from computeinfra.block.slots import Slot, SlotMaker
from computeinfra.block.transaction import OutboxRecord
from computeinfra.config import Settings
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    DEAD_TOPIC,
    Completion,
    FailureKind,
    Status,
    decode_completion,
)
from computeinfra.tasks.registry import load_registry
from computeinfra.tasks.sleep import SleepPayload


class _Record:
    """The part of a consumed record that answering reads."""

    def key(self) -> bytes:
        return b"job-1"

    def value(self) -> bytes:
        return b"{}"


def _answer(result: object) -> Slot:
    maker = SlotMaker(Settings(), load_registry(()), MiddlewareChain([]), 0, None)
    assignment = Assignment("job-1", "sleep", SleepPayload(seconds=0), "out", None)
    slot = Slot(_Record(), assignment=assignment)  # type: ignore[arg-type]
    outcome = Outcome(status=Status.SUCCEEDED, started_at=1.0, result=result)
    maker.answer(slot, complete(assignment, outcome, block=0, node=None))
    return slot


def test_a_completion_over_the_record_limit_fails_its_job_alone() -> None:
    slot = _answer({"blob": "x" * 2_000_000})
    assert slot.completion is not None
    assert slot.completion.status is Status.FAILED
    assert slot.completion.error is not None
    assert slot.completion.error.type == FailureKind.RESULT_TOO_LARGE
    assert slot.completion.result is None
    assert all(len(record.value) < MAX_ANSWER_RECORD_BYTES for record in slot.records)
    assert decode_completion(slot.records[0].value).status is Status.FAILED


def test_a_completion_under_the_limit_is_kept() -> None:
    slot = _answer({"blob": "x" * 1000})
    assert slot.completion is not None and slot.completion.status is Status.SUCCEEDED


class _ForgetsToReturn(Middleware):
    def extra_records(self, completion: Completion, request_value: bytes | None) -> Any:
        return None  # not iterable: raises where the chain reads it


def test_a_hook_whose_records_cannot_be_read_fails_its_job_and_keeps_the_others() -> None:
    chain = MiddlewareChain([DeadLetterFailures(), _ForgetsToReturn()])
    maker = SlotMaker(Settings(), load_registry(()), chain, 0, None)
    assignment = Assignment("job-1", "sleep", SleepPayload(seconds=0), "out", None)
    slot = Slot(_Record(), assignment=assignment)  # type: ignore[arg-type]
    maker.answer(slot, complete(assignment, Outcome(Status.SUCCEEDED, 1.0), block=0, node=None))
    assert slot.completion is not None and slot.completion.error is not None
    assert slot.completion.error.type == FailureKind.MIDDLEWARE
    assert "_ForgetsToReturn.extra_records" in slot.completion.error.message
    # The built-in middleware's record (the dead letter of the now failed job) is kept.
    assert [r.topic for r in slot.records] == [COMPLETED_TOPIC, DEAD_TOPIC]
    assert chain.errors == 1


class _Exits(Middleware):
    def before_dispatch(self, assignment: Assignment) -> None:
        raise SystemExit("not an Exception")


def test_even_system_exit_in_a_job_hook_is_that_jobs_failure() -> None:
    chain = MiddlewareChain([_Exits()])
    with pytest.raises(HookError, match="_Exits.before_dispatch raised SystemExit"):
        chain.before_dispatch(Assignment("k", "sleep", SleepPayload(seconds=0), "out", None))


def test_an_answer_kafka_refuses_gets_smaller_until_it_cannot() -> None:
    # What Kafka refused for good leaves the answer (``refusals.smaller``); a completion
    # refused even once made small says so, and the commit backs off instead.
    slot = _answer({"blob": "x" * 1000})
    slot.records.append(OutboxRecord(DEAD_TOPIC, b"job-1", b"copy"))
    assert _smaller(slot, {1: "too large"}) and len(slot.records) == 1
    assert slot.completion is not None and slot.completion.status is Status.SUCCEEDED
    assert _smaller(slot, {0: "Broker: Message size too large"})
    refused = decode_completion(slot.records[0].value)
    assert refused.status is Status.FAILED and refused.result is None
    assert refused.error is not None and refused.error.type == FailureKind.ANSWER_REFUSED
    assert "ended succeeded" in refused.error.message
    assert not _smaller(slot, {0: "Broker: Message size too large"})


def test_a_copy_kafka_refuses_keeps_its_head_and_size_in_headers() -> None:
    slot = Slot(_Record())  # type: ignore[arg-type]
    reason = ("computeinfra.reason", b"the record has no key")
    slot.records = [OutboxRecord(DEAD_TOPIC, None, b"y" * 5000, [reason])]
    assert _smaller(slot, {0: "too large"})
    (record,) = slot.records
    headers = dict(record.headers)
    assert record.value == b"" and headers["computeinfra.value-head"] == b"y" * 256
    assert headers["computeinfra.value-bytes"] == b"5000"
    assert headers["computeinfra.reason"].startswith(b"the record has no key; the value is")
    assert not _smaller(slot, {0: "too large"})
