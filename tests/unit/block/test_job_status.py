"""The jobStatus middleware and the web app's job board, as plain logic (no Kafka)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from computeinfra.block.jobs import Assignment
from computeinfra.block.middleware.status import StatusPublisher
from computeinfra.protocol import (
    JOB_STATUS_TOPIC,
    Completion,
    ErrorInfo,
    JobRequest,
    JobState,
    Progress,
    Status,
    decode_job_status,
)
from computeinfra.tasks.context import TaskContext
from computeinfra.web.board import JobBoard


class Empty(BaseModel):
    pass


def assignment(attempt: int = 1, inherited: bool = False) -> Assignment:
    return Assignment(
        "k1", "sleep", Empty(), "out", 100.0, max_attempts=3, attempt=attempt, inherited=inherited
    )


def completion(status: Status = Status.SUCCEEDED, attempts: int = 2) -> Completion:
    error = None if status is Status.SUCCEEDED else ErrorInfo(type="ValueError", message="no")
    return Completion(
        key="k1", task="sleep", status=status, result_dir="out", attempts=attempts,
        submitted_at=100.0, started_at=101.0, finished_at=102.0, error=error, block=1,
    )  # fmt: skip


def _past(seconds: float) -> float:
    """A wall-clock time ``seconds`` ago: when an attempt was sent to a worker."""
    return time.time() - seconds


def test_running_goes_in_a_transaction_once_shown_then_terminal_with_the_completion() -> None:
    publisher = StatusPublisher(block=1, node="n1", running_after=0.0)
    publisher.before_dispatch(assignment(1))
    publisher.before_dispatch(assignment(2))  # a retry: its latest attempt is what runs
    sent = _past(1.0)
    (record,) = publisher.commit_records({"k1": sent})
    running = decode_job_status(record.value)
    assert (record.topic, record.key) == (JOB_STATUS_TOPIC, b"k1")
    assert (running.state, running.attempt, running.block, running.node) == (
        JobState.RUNNING, 2, 1, "n1")  # fmt: skip
    assert running.started_at == sent == running.at
    assert publisher.commit_records({"k1": sent}) == []  # published once
    assert publisher.records_due() is None
    (record,) = publisher.extra_records(completion(Status.FAILED), b"{}")
    assert (record.topic, record.key) == (JOB_STATUS_TOPIC, b"k1")
    final = decode_job_status(record.value)
    assert (final.state, final.attempt, final.error.message) == (JobState.FAILED, 2, "no")
    assert final.terminal


def _wait_until(due: float) -> None:
    while time.monotonic() < due:  # a deadline on the monotonic clock, not a sleep
        time.sleep(0.005)


def test_running_is_due_once_the_attempt_has_run_for_running_after() -> None:
    publisher = StatusPublisher(block=0, running_after=0.05)
    publisher.before_dispatch(assignment())
    due = publisher.records_due()
    assert due is not None and due > time.monotonic()
    assert publisher.commit_records({"k1": time.time()}) == []  # too early: still kept
    _wait_until(due)
    (record,) = publisher.commit_records({"k1": _past(0.05)})
    assert decode_job_status(record.value).state is JobState.RUNNING


def test_a_job_waiting_for_a_worker_is_not_shown_running_however_long_it_waits() -> None:
    # A backlog: queued (for a worker) longer than running_after is still not running.
    publisher = StatusPublisher(block=0, running_after=0.05)
    publisher.before_dispatch(assignment())
    due = publisher.records_due()
    assert due is not None
    _wait_until(due)
    assert publisher.commit_records({"k1": None}) == []
    later = publisher.records_due()
    assert later is not None and later > due  # looked at again a while on
    # Sent to a worker a moment ago: shown once it has run running_after there.
    sent = _past(0.01)
    assert publisher.commit_records({"k1": sent}) == []
    when = publisher.records_due()
    assert when is not None and when <= time.monotonic() + 0.05
    _wait_until(when)
    (record,) = publisher.commit_records({"k1": sent})
    status = decode_job_status(record.value)
    assert status.state is JobState.RUNNING and status.started_at == sent


def test_a_job_answered_before_running_after_gets_no_status_record_at_all() -> None:
    publisher = StatusPublisher(block=0, running_after=60.0)
    publisher.before_dispatch(assignment())
    assert publisher.commit_records({"k1": time.time()}) == []
    # No running on the topic to replace: the completion says it all, and the transaction
    # writes to no jobStatus partition.
    assert list(publisher.extra_records(completion(), None)) == []
    assert publisher.commit_records({"k1": time.time()}) == []
    assert publisher.records_due() is None


def test_an_inherited_job_gets_its_terminal_status_even_when_quick() -> None:
    # Its previous reader may have published running: the terminal state must replace it.
    publisher = StatusPublisher(block=0, running_after=60.0)
    publisher.on_inherited("k1")
    publisher.before_dispatch(assignment(inherited=True))
    (record,) = publisher.extra_records(completion(), None)
    assert decode_job_status(record.value).state is JobState.SUCCEEDED


def test_the_terminal_status_is_the_same_however_often_the_answer_is_asked_for() -> None:
    # The answer is asked again when another middleware fails, or when it is too large;
    # only its commit (after_completion) means nothing is left to replace.
    publisher = StatusPublisher(block=0, running_after=60.0)
    publisher.on_inherited("k1")
    first = publisher.extra_records(completion(), None)
    again = publisher.extra_records(completion(Status.FAILED), None)
    assert len(first) == len(again) == 1
    assert decode_job_status(again[0].value).state is JobState.FAILED
    publisher.after_completion(completion(Status.FAILED))
    assert list(publisher.extra_records(completion(), None)) == []


def test_a_job_let_go_gets_no_running_from_this_block_and_its_terminal_if_it_comes_back() -> None:
    publisher = StatusPublisher(block=0, running_after=0.0)
    publisher.before_dispatch(assignment())
    # Its partition moved: its new owner may have answered it already, and a running
    # written after that would be the state compaction keeps.
    assert publisher.commit_records(in_hand={}) == []
    assert publisher.commit_records({"k1": _past(1.0)}) == []  # dropped, not kept for later
    assert publisher.records_due() is None
    # The new owner may have shown it running; if it comes back here and ends, its
    # terminal state replaces that.
    (record,) = publisher.extra_records(completion(), None)
    assert decode_job_status(record.value).terminal


def test_board_never_moves_a_job_back() -> None:
    board = JobBoard(capacity=10)
    request = JobRequest(task="sleep", payload={}, result_dir="out", submitted_at=100.0)
    publisher = StatusPublisher(block=0)
    publisher.on_inherited("k1")
    final = completion()
    assert board.completion(final) is not None
    # A running status and the request, read late from other topics, change nothing.
    board.status(decode_job_status(publisher.extra_records(final, None)[0].value))
    assert board.request("k1", request, 100.5) is None
    view = board.get("k1")
    assert view is not None and view.state is JobState.SUCCEEDED and view.completion == final


def test_board_keeps_what_later_steps_do_not_carry_and_bounds_its_size() -> None:
    board = JobBoard(capacity=2)
    request = JobRequest(task="sleep", payload={}, result_dir="kept", submitted_at=100.0)
    board.request("k1", request, 100.0)
    publisher = StatusPublisher(block=0, running_after=0.0)
    publisher.before_dispatch(assignment())
    # A status from an older writer, without the result folder.
    (record,) = publisher.commit_records({"k1": _past(1.0)})
    status = decode_job_status(record.value).model_copy(update={"result_dir": None})
    running = board.status(status)
    assert running is not None and running.state is JobState.RUNNING
    assert running.result_dir == "kept" and running.max_attempts == 3
    board.request("k2", request.model_copy(update={"submitted_at": 101.0}), 101.0)
    board.request("k3", request.model_copy(update={"submitted_at": 102.0}), 102.0)
    assert board.get("k1") is None
    assert [v.key for v in board.recent(10)] == ["k3", "k2"]
    assert [v.key for v in board.recent(10, keys=["k2", "nope"])] == ["k2"]


def test_progress_told_is_due_at_once_coalesced_and_gone_once_answered() -> None:
    publisher = StatusPublisher(block=1, node="n1", running_after=60.0)
    publisher.before_dispatch(assignment())
    sent = _past(0.2)
    for done in (1, 2, 3):  # told three times before a transaction: one record, the last
        publisher.on_progress(assignment(), Progress(done=done, total=10, at=time.time()), sent)
    due = publisher.records_due()
    assert due is not None and due <= time.monotonic()
    (record,) = publisher.commit_records({"k1": sent})
    running = decode_job_status(record.value)
    assert running.state is JobState.RUNNING and running.progress is not None
    assert (running.progress.done, running.progress.total) == (3, 10)
    assert publisher.commit_records({"k1": sent}) == []  # its plain running is not needed
    publisher.on_progress(assignment(), Progress(done=4, total=10, at=time.time()), sent)
    (final,) = publisher.extra_records(completion(), b"{}")  # shown: the terminal replaces it
    assert decode_job_status(final.value).progress is None
    assert publisher.commit_records({}) == []  # answered: the progress told is dropped
    publisher.on_progress(assignment(), Progress(done=5, at=time.time()), sent)
    assert publisher.commit_records({}) == []  # no longer held: nothing


def test_ctx_progress_checks_what_it_is_told_and_keeps_the_last() -> None:
    ctx = TaskContext(key="k", attempt=1, results_root=Path("/tmp"), result_dir=Path("/tmp"))
    assert ctx.last_progress is None
    ctx.progress(2, 4, "half")
    said = ctx.last_progress
    assert said is not None and (said.done, said.total, said.message) == (2, 4, "half")
    bad_values = (("2", TypeError), (True, TypeError), (-1, ValueError), (5, ValueError),
                  (float("inf"), ValueError), (float("nan"), ValueError))  # fmt: skip
    for bad, error in bad_values:
        with pytest.raises(error):
            ctx.progress(bad, 4)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ctx.progress(1, "4")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ctx.progress(1, float("inf"))
    assert ctx.last_progress == said  # nothing written by a bad call
