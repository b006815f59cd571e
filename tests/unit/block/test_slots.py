"""Intake and answers with the jobStatus middleware (``block/slots.py``), as plain logic:
a ``running`` that may be on the topic is always replaced by the job's terminal state,
whichever way the job is answered (issue #13, review of 39bb8a7)."""

from __future__ import annotations

import time
from typing import Any

from computeinfra.block.answers import complete
from computeinfra.block.jobs import Assignment, Forward, Outcome
from computeinfra.block.middleware import Middleware, MiddlewareChain
from computeinfra.block.middleware.status import StatusPublisher
from computeinfra.block.slots import FORWARDED_BY_HEADER, Slot, SlotMaker
from computeinfra.block.transaction import OutboxRecord
from computeinfra.config import Settings
from computeinfra.errors import RequestError
from computeinfra.protocol import (
    ATTEMPTS_HEADER,
    COMPLETED_TOPIC,
    HANDOVERS_HEADER,
    JOB_STATUS_TOPIC,
    Completion,
    FailureKind,
    JobRequest,
    JobState,
    Status,
    decode_completion,
    decode_job_status,
    encode_request,
    handed_over,
)
from computeinfra.tasks.registry import load_registry

Headers = list[tuple[str, bytes]]


class _Message:
    """The part of a consumed ``pendingJobs`` record that intake reads."""

    def __init__(self, headers: Headers | None = None, max_attempts: int = 3) -> None:
        request = JobRequest(
            task="sleep", payload={"seconds": 0}, result_dir="out", max_attempts=max_attempts
        )
        self._value, self._headers = encode_request(request), headers

    def key(self) -> bytes:
        return b"k1"

    def value(self) -> bytes:
        return self._value

    def headers(self) -> Headers | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, int(time.time() * 1000))

    def topic(self) -> str:
        return "pendingJobs"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 7


class _Raises(Middleware):
    """A user's middleware whose records fail."""

    def extra_records(self, completion: Completion, request_value: bytes | None) -> Any:
        raise RuntimeError("user bug")


class _Places(Middleware):
    def __init__(self, decision: Forward | RequestError) -> None:
        self.decision = decision

    def placement(self, assignment: Assignment) -> Forward | RequestError | None:
        return self.decision


def _maker(*middleware: Middleware) -> tuple[SlotMaker, StatusPublisher]:
    status = StatusPublisher(block=0, running_after=0.0)
    chain = MiddlewareChain([status, *middleware])
    return SlotMaker(Settings(), load_registry(()), chain, 0, None), status


def _statuses(records: list[OutboxRecord]) -> list[JobState]:
    return [decode_job_status(r.value).state for r in records if r.topic == JOB_STATUS_TOPIC]


def _shown_running(status: StatusPublisher, assignment: Assignment) -> None:
    status.before_dispatch(assignment)
    (running,) = status.commit_records({assignment.key: time.time() - 1.0})
    assert decode_job_status(running.value).state is JobState.RUNNING


def _run(maker: SlotMaker, slot: Slot, result: object = None) -> None:
    assert slot.assignment is not None
    outcome = Outcome(status=Status.SUCCEEDED, started_at=1.0, result=result)
    maker.answer(slot, complete(slot.assignment, outcome, block=0, node=None))


def test_a_users_failing_records_hook_keeps_the_terminal_status_of_a_job_shown_running() -> None:
    maker, status = _maker(_Raises())
    slot = maker.make(_Message())  # type: ignore[arg-type]
    assert slot.assignment is not None
    _shown_running(status, slot.assignment)
    _run(maker, slot)
    assert slot.completion is not None and slot.completion.error is not None
    assert slot.completion.error.type == FailureKind.MIDDLEWARE
    # The running on the topic is replaced: else the job would show running for good.
    assert _statuses(slot.records) == [JobState.FAILED]


def test_a_result_too_large_keeps_the_terminal_status_of_a_job_shown_running() -> None:
    maker, status = _maker()
    slot = maker.make(_Message())  # type: ignore[arg-type]
    assert slot.assignment is not None
    _shown_running(status, slot.assignment)
    _run(maker, slot, {"blob": "x" * 2_000_000})
    assert slot.completion is not None and slot.completion.error is not None
    assert slot.completion.error.type == FailureKind.RESULT_TOO_LARGE
    assert _statuses(slot.records) == [JobState.FAILED]


def test_an_inherited_job_rejected_at_intake_replaces_what_its_last_reader_showed() -> None:
    maker, _ = _maker(_Places(RequestError("no node has special 1")))
    slot = maker.make(_Message(), read_before=True)  # type: ignore[arg-type]
    assert decode_completion(slot.records[0].value).status is Status.REJECTED
    assert _statuses(slot.records) == [JobState.REJECTED]
    # The same job read fresh: no status, the completion says it all.
    fresh, _ = _maker(_Places(RequestError("no node has special 1")))
    assert _statuses(fresh.make(_Message()).records) == []  # type: ignore[arg-type]


def test_a_forward_keeps_the_jobs_headers_and_says_when_it_was_inherited() -> None:
    maker, _ = _maker(_Places(Forward("pendingJobs.lane.special", "needs special")))
    passed = [(HANDOVERS_HEADER, b"1"), (ATTEMPTS_HEADER, b"1"), (FORWARDED_BY_HEADER, b"x")]
    (record,) = maker.make(_Message(passed)).records  # type: ignore[arg-type]
    headers = dict(record.headers or [])
    assert headers[ATTEMPTS_HEADER] == b"1" and headers[HANDOVERS_HEADER] == b"1"
    assert headers[FORWARDED_BY_HEADER].startswith(b"block-0: needs special")
    (inherited,) = maker.make(_Message(), read_before=True).records  # type: ignore[arg-type]
    assert handed_over(inherited.headers)  # its reader there knows a running may be out
    (fresh,) = maker.make(_Message()).records  # type: ignore[arg-type]
    assert not handed_over(fresh.headers)


def test_a_job_passed_on_counts_on_from_its_attempts_and_always_has_one_left() -> None:
    maker, _ = _maker()

    def taken(headers: Headers | None, read_before: bool = False) -> Assignment:
        slot = maker.make(_Message(headers), read_before)  # type: ignore[arg-type]
        assert slot.assignment is not None
        return slot.assignment

    assert (taken(None).attempt, taken(None).inherited) == (1, False)
    assert (taken(None, read_before=True).attempt, taken(None, True).inherited) == (1, True)
    passed = taken([(HANDOVERS_HEADER, b"1"), (ATTEMPTS_HEADER, b"1")])
    assert (passed.attempt, passed.inherited) == (2, True)
    # Cut short in its last attempt by a block that stopped: not the job's failure.
    last = taken([(HANDOVERS_HEADER, b"1"), (ATTEMPTS_HEADER, b"3")])
    assert (last.attempt, last.max_attempts) == (3, 3)
    # A deadJobs copy replayed as it is carries attempts too, but was handed over by no one.
    assert taken([(ATTEMPTS_HEADER, b"3")], read_before=True).attempt == 1


def test_an_answered_job_let_go_and_taken_up_again_replaces_what_another_owner_showed() -> None:
    maker, _ = _maker()
    slot = maker.make(_Message())  # type: ignore[arg-type]
    _run(maker, slot)  # quick: answered with no status at all
    assert [r.topic for r in slot.records] == [COMPLETED_TOPIC]
    # Let go before its commit; meanwhile another block owned the partition, and may have
    # shown the job running before it lost the partition back.
    again = maker.take_up(slot, _Message(), read_before=True)  # type: ignore[arg-type]
    assert again is slot and slot.completion is not None
    assert _statuses(slot.records) == [JobState.SUCCEEDED]
    assert decode_completion(slot.records[0].value) == slot.completion


def test_an_inherited_job_rejected_as_unknown_here_still_replaces_its_running() -> None:
    # Another node (with other task modules) ran it and showed it running; this block does
    # not know its task: the rejection must carry the terminal status too.
    maker, _ = _maker()
    message = _Message()
    message._value = message._value.replace(b'"sleep"', b'"only-elsewhere"')
    slot = maker.make(message, read_before=True)  # type: ignore[arg-type]
    assert decode_completion(slot.records[0].value).status is Status.REJECTED
    assert _statuses(slot.records) == [JobState.REJECTED]


def test_a_replayed_dead_letter_forwarded_as_inherited_does_not_carry_its_attempts() -> None:
    maker, _ = _maker(_Places(Forward("pendingJobs.lane.special", "needs special")))
    replayed = [(ATTEMPTS_HEADER, b"3")]  # as deadJobs headers have it; no block passed it on
    (record,) = maker.make(_Message(replayed), read_before=True).records  # type: ignore[arg-type]
    assert handed_over(record.headers)
    assert ATTEMPTS_HEADER not in dict(record.headers)  # the lane's reader starts at 1


def test_a_forwarded_job_let_go_and_taken_up_again_is_marked_inherited() -> None:
    maker, _ = _maker(_Places(Forward("pendingJobs.lane.special", "needs special")))
    slot = maker.make(_Message())  # type: ignore[arg-type]
    assert not handed_over(slot.records[0].headers)
    # Let go before its commit; another block ran it meanwhile (and showed it running).
    maker.take_up(slot, _Message(), read_before=True)  # type: ignore[arg-type]
    (record,) = slot.records
    assert handed_over(record.headers) and record.topic == "pendingJobs.lane.special"


def test_a_dead_letter_taken_up_again_is_left_as_it_is() -> None:
    maker, _ = _maker()
    keyless = _Message()
    keyless.key = lambda: None  # type: ignore[method-assign,assignment,return-value]
    slot = maker.make(keyless)  # type: ignore[arg-type]
    (dead,) = slot.records
    maker.take_up(slot, keyless, read_before=True)  # type: ignore[arg-type]
    assert slot.records == [dead] and not handed_over(list(dead.headers))


def test_an_internal_error_after_intake_is_answered_under_the_requests_task() -> None:
    """A job whose assignment was already let go (a forward that raised, say) is answered
    under the task its request names, as the analyzer counted the request: under
    "(unreadable)", it was one job submitted there and one in flight here for good."""
    maker, _ = _maker()
    slot = maker.make(_Message())  # type: ignore[arg-type]
    slot.assignment = None
    maker.answer_error(slot, RuntimeError("a bug"))
    assert slot.completion is not None and slot.completion.status is Status.REJECTED
    assert slot.completion.task == "sleep"
