"""Answers: a completion too large for Kafka becomes its job's ``ResultTooLarge`` failure
instead of a record that fails its whole transaction forever (issue #13, defect 3)."""

from __future__ import annotations

from computeinfra.block.answers import MAX_ANSWER_RECORD_BYTES, complete
from computeinfra.block.jobs import Assignment, Outcome
from computeinfra.block.middleware import MiddlewareChain
from computeinfra.block.slots import Slot, SlotMaker
from computeinfra.config import Settings
from computeinfra.protocol import FailureKind, Status, decode_completion
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
