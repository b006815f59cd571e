"""Cancels as a block reads them (``block/cancels.py``) and answers them at intake
(``SlotMaker``), as plain logic: issue #14."""

from __future__ import annotations

from pathlib import Path

import pytest

import computeinfra.block.cancelling as cancelling_module
from computeinfra.block.backlog import JobQueue
from computeinfra.block.batching import BatchPlanner
from computeinfra.block.cancelling import Cancelling
from computeinfra.block.cancels import Cancels
from computeinfra.block.jobs import Assignment
from computeinfra.block.middleware import MiddlewareChain
from computeinfra.block.middleware.status import StatusPublisher
from computeinfra.block.retries import Retries
from computeinfra.block.slots import SlotMaker
from computeinfra.config import Settings
from computeinfra.protocol import (
    ATTEMPTS_HEADER,
    CANCEL_TOPIC,
    HANDOVERS_HEADER,
    CancelRequest,
    Completion,
    FailureKind,
    Output,
    Status,
    decode_completion,
    encode_cancel,
)
from computeinfra.tasks.registry import load_registry

from .test_slots import _Message, _statuses


class _CancelRecord:
    def __init__(self, key: bytes | None, value: bytes | None) -> None:
        self._key, self._value = key, value

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return CANCEL_TOPIC

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 3


def _read(cancels: Cancels, key: bytes | None, value: bytes | None) -> None:
    cancels.on_record(_CancelRecord(key, value))  # type: ignore[arg-type]


def _maker(cancels: Cancels) -> SlotMaker:
    chain = MiddlewareChain([StatusPublisher(block=0, running_after=0.0)])
    return SlotMaker(Settings(), load_registry(()), chain, 0, None, cancels)


def test_a_cancel_is_read_withdrawn_and_told_once_as_fresh() -> None:
    cancels = Cancels()
    _read(cancels, b"k1", encode_cancel(CancelRequest(reason="not needed")))
    asked = cancels.asked("k1")
    assert asked is not None and asked.reason == "not needed"
    assert cancels.fresh() == ["k1"] and cancels.fresh() == []
    _read(cancels, b"k1", None)  # a tombstone withdraws it
    assert cancels.asked("k1") is None and len(cancels) == 0


def test_an_unreadable_or_keyless_cancel_is_skipped_and_the_next_one_read() -> None:
    cancels = Cancels()
    _read(cancels, b"k1", b"{not json")
    _read(cancels, b"k2", b'{"reason": 7}')
    _read(cancels, None, encode_cancel(CancelRequest()))
    _read(cancels, b"k3", b"{}")  # every field has a default
    assert cancels.asked("k1") is None and cancels.asked("k2") is None
    assert cancels.asked("k3") is not None and cancels.fresh() == ["k3"]


def test_a_cancelled_job_read_at_intake_is_answered_cancelled_without_running() -> None:
    cancels = Cancels()
    cancels.add("k1", CancelRequest(reason="changed my mind"))
    slot = _maker(cancels).make(_Message())  # type: ignore[arg-type]
    assert slot.assignment is None and slot.completion is not None
    completion = decode_completion(slot.records[0].value)
    assert completion.status is Status.CANCELLED and completion.attempts == 0
    assert completion.error is not None and completion.error.type == FailureKind.CANCELLED
    assert "changed my mind" in completion.error.message
    assert completion.task == "sleep" and completion.result_dir == "out"
    # Read fresh, no running can be out: the completion is the whole answer.
    assert _statuses(slot.records) == []


def test_a_cancelled_job_passed_on_keeps_the_attempts_it_made_and_replaces_its_running() -> None:
    cancels = Cancels()
    cancels.add("k1", CancelRequest())
    headers = [(HANDOVERS_HEADER, b"1"), (ATTEMPTS_HEADER, b"2")]
    slot = _maker(cancels).make(_Message(headers))  # type: ignore[arg-type]
    completion = decode_completion(slot.records[0].value)
    assert completion.status is Status.CANCELLED and completion.attempts == 2
    assert _statuses(slot.records) == [Status.CANCELLED]


def test_a_job_whose_cancel_was_withdrawn_runs() -> None:
    cancels = Cancels()
    cancels.add("k1", CancelRequest())
    _read(cancels, b"k1", None)
    slot = _maker(cancels).make(_Message())  # type: ignore[arg-type]
    assert slot.assignment is not None and not slot.answered


def test_a_job_cancelled_while_let_go_is_marked_when_its_record_comes_back() -> None:
    """A rebalance let the job go (its cancel was read then, and found nothing in hand);
    taken up again, it must still be stopped and answered cancelled."""
    cancels = Cancels()
    maker = _maker(cancels)
    orphan = maker.make(_Message())  # type: ignore[arg-type]
    assert orphan.assignment is not None and orphan.cancel is None
    cancels.add("k1", CancelRequest(reason="while let go"))
    taken = maker.take_up(orphan, _Message(), read_before=False)  # type: ignore[arg-type]
    assert taken.cancel is not None and taken.cancel.reason == "while let go"


def test_a_cancel_names_its_submission_not_a_later_one_under_the_same_key() -> None:
    cancels = Cancels()
    cancels.add("k", CancelRequest(submitted_at=100.0))
    cancels.add("any", CancelRequest())
    first = Assignment("k", "sleep", None, "d", submitted_at=100.0)  # type: ignore[arg-type]
    again = Assignment("k", "sleep", None, "d", submitted_at=160.0)  # type: ignore[arg-type]
    assert cancels.of(first) is not None and cancels.of(again) is None
    unstamped = Assignment("k", "sleep", None, "d", submitted_at=None)  # type: ignore[arg-type]
    assert cancels.of(unstamped) is not None
    anyone = Assignment("any", "sleep", None, "d", submitted_at=1e12)  # type: ignore[arg-type]
    assert cancels.of(anyone) is not None


def test_a_job_answered_but_not_committed_when_its_cancel_is_read_is_answered_cancelled(
    tmp_path: Path,
) -> None:
    """The cancel was acknowledged before the answer committed: the job's answer becomes
    ``cancelled`` (its attempts kept) and what it wrote is removed."""
    cancels = Cancels()
    settings = Settings(results_root=tmp_path)
    maker = SlotMaker(settings, load_registry(()),
                      MiddlewareChain([StatusPublisher(block=0, running_after=0.0)]), 0, None,
                      cancels)  # fmt: skip
    cancelling = Cancelling(settings, maker, JobQueue(BatchPlanner()), Retries(), 0, None)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "k1.txt").write_text("written by the job")
    slot = maker.make(_Message())  # type: ignore[arg-type]
    done = Completion(key="k1", task="sleep", status=Status.SUCCEEDED, result_dir="out",
                      outputs=[Output(path="out/k1.txt", bytes=18)], result={"slept": 1},
                      attempts=2, submitted_at=100.0)  # fmt: skip
    maker.answer(slot, done)
    assert not cancelling.answered_instead(slot)  # no cancel read: it stands
    cancels.add("k1", CancelRequest(submitted_at=50.0))  # names an earlier submission
    assert not cancelling.answered_instead(slot)
    cancels.add("k1", CancelRequest(reason="late", submitted_at=100.0))
    assert cancelling.answered_instead(slot)
    completion = decode_completion(slot.records[0].value)
    assert (completion.status, completion.attempts, completion.outputs) == (
        Status.CANCELLED, 2, [])  # fmt: skip
    assert completion.error is not None and "late" in completion.error.message
    assert not (tmp_path / "out" / "k1.txt").exists()
    assert not cancelling.answered_instead(slot)  # once


class _Reader:
    """A cancel reader that cannot tell it has read to the end (a broken topic)."""

    def __init__(self) -> None:
        self.asked = 0

    def read_past(self, timeout: float) -> bool:
        self.asked += 1
        return False


def test_a_commit_waits_while_the_cancels_may_be_unread_then_goes_on_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cancels = Cancels()
    reader = _Reader()
    cancels.reader = reader  # type: ignore[assignment]
    maker = _maker(cancels)
    cancelling = Cancelling(Settings(), maker, JobQueue(BatchPlanner()), Retries(), 0, None)
    statuses_only = maker.make(_Message())  # type: ignore[arg-type]
    assert cancelling.check([statuses_only]) and reader.asked == 0  # no answer: no look
    slot = maker.make(_Message())  # type: ignore[arg-type]
    maker.answer(slot, Completion(key="k1", task="sleep", status=Status.SUCCEEDED,
                                  result_dir="out", attempts=1))  # fmt: skip
    assert not cancelling.check([slot]) and cancelling.unchecked == 0
    monkeypatch.setattr(cancelling_module, "UNSETTLED_SECONDS", 0.0)
    assert cancelling.check([slot]) and cancelling.unchecked == 1  # a broken topic: goes on
    cancels.add("k1", CancelRequest())
    assert not cancelling.check([slot])  # a cancel read names it: never committed so
