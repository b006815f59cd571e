"""When a block's transaction is due (``block/commits.py``), as plain logic: no Kafka."""

from __future__ import annotations

import math
import time

import pytest

from computeinfra.block.commits import MAX_ANSWERS_PER_TRANSACTION, Commits
from computeinfra.block.middleware import Middleware, MiddlewareChain
from computeinfra.block.slots import Slot

WINDOW = 0.05
WHERE = ("pendingJobs", 0)


class Due(Middleware):
    """Has records due at a given time."""

    def __init__(self, when: float | None) -> None:
        self.when = when

    def records_due(self) -> float | None:
        return self.when


class Broken(Middleware):
    def records_due(self) -> float | None:
        raise RuntimeError("no")


def _commits(*middleware: Middleware) -> Commits:
    return Commits(MiddlewareChain(middleware), WINDOW, block=0)


def _wait_past(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() <= deadline:  # a deadline on the monotonic clock, not a sleep
        time.sleep(0.005)


def test_nothing_waiting_is_never_due() -> None:
    commits = _commits(Due(None))
    assert commits.wait(running=False) is None
    assert not commits.due(running=False)


def test_an_answer_is_due_at_once_when_nothing_runs_else_after_the_window() -> None:
    commits = _commits()
    commits.add((WHERE, 1), Slot(message=None))  # type: ignore[arg-type]
    assert commits.due(running=False) and commits.wait(running=False) == 0.0
    assert not commits.due(running=True)
    wait = commits.wait(running=True)
    assert wait is not None and 0 < wait <= WINDOW
    _wait_past(wait)
    assert commits.due(running=True)


def test_records_the_middleware_has_due_make_a_transaction_due_without_answers() -> None:
    due = Due(time.monotonic() + WINDOW)
    commits = _commits(Due(None), due)
    assert not commits.due(running=True)
    wait = commits.wait(running=True)
    assert wait is not None and 0 < wait <= WINDOW
    _wait_past(wait)
    assert commits.due(running=True)
    due.when = None  # published: nothing waits
    assert commits.wait(running=True) is None


def test_a_middleware_failing_to_say_when_is_counted_and_taken_as_no_need() -> None:
    chain = MiddlewareChain([Broken(), Due(123.0)])
    assert chain.records_due() == 123.0
    assert chain.records_due() == 123.0
    # Asked at every step: counted when it starts failing, not thousands of times a second.
    assert chain.errors == 1


@pytest.mark.parametrize("answer", [math.nan, math.inf, "soon", True, [1.0]])
def test_a_middleware_answering_no_time_is_a_hook_error_not_a_stalled_block(answer: object) -> None:
    # A NaN compares false with everything: taken as the earliest, nothing would ever be
    # due; a string would raise where the deadline is computed, outside the hook's guard.
    weird = Due(None)
    weird.when = answer  # type: ignore[assignment]
    commits = _commits(weird, Due(None))
    commits.add((WHERE, 1), Slot(message=None))  # type: ignore[arg-type]
    assert commits.due(running=False) and commits.wait(running=False) == 0.0
    assert commits.wait(running=True) is not None
    assert commits._hooks.errors == 1
    weird.when = None  # it recovers: a later failure is counted again
    assert commits.wait(running=True) is not None
    weird.when = answer  # type: ignore[assignment]
    commits.wait(running=True)
    assert commits._hooks.errors == 2


def test_many_answers_are_due_before_the_window() -> None:
    commits = _commits()
    for offset in range(MAX_ANSWERS_PER_TRANSACTION):
        commits.add((WHERE, offset), Slot(message=None))  # type: ignore[arg-type]
    assert commits.due(running=True)
