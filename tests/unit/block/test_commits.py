"""When a block's transaction is due (``block/commits.py``), as plain logic: no Kafka."""

from __future__ import annotations

import time

from computeinfra.block.commits import MAX_ANSWERS_PER_TRANSACTION, Commits
from computeinfra.block.middleware import MiddlewareChain
from computeinfra.block.slots import Slot

WINDOW = 0.05
WHERE = ("pendingJobs", 0)


def _commits() -> Commits:
    return Commits(MiddlewareChain([]), WINDOW, block=0)


def _wait_past(commits: Commits, seconds: float) -> None:
    deadline = commits.since() + seconds
    while time.monotonic() <= deadline:  # a deadline on the monotonic clock, not a sleep
        time.sleep(0.005)


def test_nothing_waiting_is_never_due() -> None:
    commits = _commits()
    assert commits.since() == 0.0
    assert not commits.due(running=False)


def test_an_answer_is_due_at_once_when_nothing_runs_else_after_the_window() -> None:
    commits = _commits()
    commits.add((WHERE, 1), Slot(message=None))  # type: ignore[arg-type]
    assert commits.due(running=False)
    assert not commits.due(running=True)
    _wait_past(commits, WINDOW)
    assert commits.due(running=True)


def test_a_job_sent_to_a_worker_makes_a_transaction_due_for_its_running_status() -> None:
    commits = _commits()
    commits.dispatched()
    first = commits.since()
    commits.dispatched()  # the first one since the last commit counts
    assert commits.since() == first
    assert not commits.due(running=True)
    _wait_past(commits, WINDOW)
    assert commits.due(running=True)


def test_many_answers_are_due_before_the_window() -> None:
    commits = _commits()
    for offset in range(MAX_ANSWERS_PER_TRANSACTION):
        commits.add((WHERE, offset), Slot(message=None))  # type: ignore[arg-type]
    assert commits.due(running=True)
