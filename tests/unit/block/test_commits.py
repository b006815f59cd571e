"""When a block's transaction is due (``block/commits.py``), as plain logic: no Kafka."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from computeinfra.block.commit_thread import CommitThread
from computeinfra.block.commits import (
    MAX_ANSWERS_PER_TRANSACTION,
    RUN_MULTIPLE,
    WITHDRAWN_PAUSE_SECONDS,
    Commits,
)
from computeinfra.block.middleware import Middleware, MiddlewareChain
from computeinfra.block.positions import CommitPlan
from computeinfra.block.slots import Slot
from computeinfra.block.transaction import (
    OutboxRecord,
    PartitionLost,
    RecordsRefused,
    Withdrawn,
)
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    JOB_STATUS_TOPIC,
    Completion,
    FailureKind,
    Status,
    encode_completion,
)

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


def _soon() -> float:
    """A job running now is expected to end at once."""
    return time.monotonic()


def _wait_past(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() <= deadline:  # a deadline on the monotonic clock, not a sleep
        time.sleep(0.005)


def test_nothing_waiting_is_never_due() -> None:
    commits = _commits(Due(None))
    assert commits.wait(None) is None
    assert not commits.due(None)


def test_an_answer_is_due_at_once_when_none_is_expected_else_after_the_window() -> None:
    commits = _commits()
    commits.add((WHERE, 1), Slot(message=None))  # type: ignore[arg-type]
    assert commits.due(None) and commits.wait(None) == 0.0
    assert not commits.due(_soon())
    wait = commits.wait(_soon())
    assert wait is not None and 0 < wait <= WINDOW
    _wait_past(wait)
    assert commits.due(_soon())


def test_records_the_middleware_has_due_make_a_transaction_due_without_answers() -> None:
    due = Due(time.monotonic() + WINDOW)
    commits = _commits(Due(None), due)
    assert not commits.due(_soon())
    wait = commits.wait(_soon())
    assert wait is not None and 0 < wait <= WINDOW
    _wait_past(wait)
    assert commits.due(_soon())
    due.when = None  # published: nothing waits
    assert commits.wait(_soon()) is None


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
    assert commits.due(None) and commits.wait(None) == 0.0
    assert commits.wait(_soon()) is not None
    assert commits._hooks.errors == 1
    weird.when = None  # it recovers: a later failure is counted again
    assert commits.wait(_soon()) is not None
    weird.when = answer  # type: ignore[assignment]
    commits.wait(_soon())
    assert commits._hooks.errors == 2


def test_an_answer_waits_only_while_another_is_expected_before_its_window_ends() -> None:
    commits = _commits()
    commits.add((WHERE, 1), Slot(message=None))  # type: ignore[arg-type]
    # The job running is expected to end after the window: nothing to wait for.
    assert commits.due(time.monotonic() + 2 * WINDOW)
    wait = commits.wait(time.monotonic() + WINDOW / 2)
    assert wait is not None and WINDOW / 2 < wait <= WINDOW


def _ran(key: str, seconds: float) -> Slot:
    slot = _answer(key, None)
    assert slot.completion is not None
    finished = slot.completion.finished_at
    slot.completion = slot.completion.model_copy(update={"started_at": finished - seconds})
    return slot


@pytest.mark.parametrize(
    ("ran", "may_wait"),
    [(0.0, WINDOW), (0.02, RUN_MULTIPLE * 0.02), (1.0, 4 * WINDOW)],
)
def test_an_answer_may_wait_a_multiple_of_its_run_time_within_the_windows(
    ran: float, may_wait: float
) -> None:
    """A transaction costs the same for one answer or many: a job that took 20 ms may wait
    for the jobs after it for 100 ms, a no-op job for the shortest window, a long job for
    the longest at most."""
    commits = Commits(MiddlewareChain([]), WINDOW, block=0, window_max=4 * WINDOW)
    commits.add((WHERE, 1), _ran("k", ran))
    wait = commits.wait(_soon())
    assert wait is not None and may_wait - WINDOW / 2 < wait <= may_wait


def test_the_soonest_answer_to_have_waited_enough_makes_the_transaction_due() -> None:
    commits = Commits(MiddlewareChain([]), WINDOW, block=0, window_max=4 * WINDOW)
    commits.add((WHERE, 1), _ran("slow", 1.0))
    commits.add((WHERE, 2), _ran("quick", 0.0))
    wait = commits.wait(_soon())
    assert wait is not None and wait <= WINDOW


def test_many_answers_are_due_before_the_window() -> None:
    commits = _commits()
    for offset in range(MAX_ANSWERS_PER_TRANSACTION):
        commits.add((WHERE, offset), Slot(message=None))  # type: ignore[arg-type]
    assert commits.due(_soon())


class _Record:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def key(self) -> bytes:
        return self._key


class _Positions:
    """Plans every answer in hand; ``committed`` counts."""

    def __init__(self, keys: list[Any]) -> None:
        self.keys, self.commits = keys, 0

    def plan(self) -> CommitPlan:
        return CommitPlan([], list(self.keys), {})

    def committed(self, plan: CommitPlan) -> None:
        self.commits += 1


class _Broker:
    """Refuses a record whose value holds BIG: the whole transaction's records when it
    was sent among others (a batch), only it when it was sent alone."""

    def __init__(self) -> None:
        self.tries: list[frozenset[int]] = []

    def commit(
        self, consumer: Any, offsets: Any, records: list[OutboxRecord], alone: Any, check: Any
    ) -> None:
        self.tries.append(frozenset(alone))
        if check is not None and not check():
            raise Withdrawn
        big = [i for i, r in enumerate(records) if b"BIG" in r.value]
        if not big:
            return
        named = {i: "too large" for i in (big if big[0] in alone else range(len(records)))}
        raise RecordsRefused(named, frozenset(alone))


def _answer(key: str, result: object) -> Slot:
    completion = Completion(key=key, task="t", status=Status.SUCCEEDED, result_dir="d",
                            result=result, attempts=1)  # fmt: skip
    slot = Slot(message=_Record(key.encode()))  # type: ignore[arg-type]
    slot.completion = completion
    slot.records = [OutboxRecord(COMPLETED_TOPIC, key.encode(), encode_completion(completion))]
    return slot


def test_a_refused_batch_is_sent_again_record_by_record_and_only_the_guilty_answer_changes() -> (
    None
):
    commits, broker = _commits(), _Broker()
    big, small = _answer("big", "BIG"), _answer("small", "fine")
    commits.add((WHERE, 1), big)
    commits.add((WHERE, 2), small)
    positions = _Positions([(WHERE, 1), (WHERE, 2)])
    for _ in range(3):
        commits.commit(positions, broker, None, {})  # type: ignore[arg-type]
    # Suspects stay sent alone until a commit succeeds.
    assert broker.tries == [frozenset(), frozenset({0, 1}), frozenset({0, 1, 2})]
    assert positions.commits == 1
    assert small.completion is not None and small.completion.status is Status.SUCCEEDED
    assert big.completion is not None and big.completion.status is Status.FAILED
    assert big.completion.error is not None
    assert big.completion.error.type == FailureKind.ANSWER_REFUSED
    # Its terminal status goes with it: a running shown for it must not stay.
    assert [r.topic for r in big.records] == [COMPLETED_TOPIC, JOB_STATUS_TOPIC]


def test_a_commit_its_check_withdraws_keeps_its_answers_for_the_next_one() -> None:
    commits, broker = _commits(), _Broker()
    slot = _answer("k", "fine")
    commits.add((WHERE, 1), slot)
    positions = _Positions([(WHERE, 1)])
    asked: list[list[str]] = []

    def check(slots: Any) -> bool:
        asked.append([s.key for s in slots])
        return len(asked) > 1  # no the first time (a cancel unread), yes then

    commits.commit(positions, broker, None, {}, check)  # type: ignore[arg-type]
    assert positions.commits == 0 and (WHERE, 1) in commits.answers
    wait = commits.wait(None)
    assert wait is not None and wait <= WITHDRAWN_PAUSE_SECONDS  # tried again soon
    assert commits.withdrawn == 1
    commits.commit(positions, broker, None, {}, check)  # type: ignore[arg-type]
    assert positions.commits == 1 and not commits.answers
    assert asked == [["k"], ["k"]]


class _SlowBroker(_Broker):
    """Holds each transaction until ``release`` is set; raises ``fail`` if given."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.fail: BaseException | None = None

    def commit(
        self, group: Any, offsets: Any, records: list[OutboxRecord], alone: Any, check: Any
    ) -> None:
        assert self.release.wait(5.0), "the test never released the transaction"
        if self.fail is not None:
            raise self.fail
        super().commit(group, offsets, records, alone, check)


def _start(commits: Commits, positions: Any, broker: Any, thread: CommitThread,
           ended: threading.Event) -> None:  # fmt: skip
    commits.start(positions, broker, None, {}, None, thread, ended.set)  # type: ignore[arg-type]


def test_a_transaction_in_flight_lets_answers_gather_for_the_next_one() -> None:
    """The consume thread goes on while a transaction runs on the commit thread: answers
    ready meanwhile wait for the next transaction, which is not cut before this one ends
    (commits stay in order)."""
    commits, broker, ended = _commits(), _SlowBroker(), threading.Event()
    first, second = _answer("first", "fine"), _answer("second", "fine")
    commits.add((WHERE, 1), first)
    positions = _Positions([(WHERE, 1)])
    thread = CommitThread("test-commit")
    _start(commits, positions, broker, thread, ended)
    assert commits.in_flight and not commits.finish(0.0)
    commits.add((WHERE, 2), second)
    assert not commits.due(None) and commits.wait(None) is None  # none cut meanwhile
    broker.release.set()
    assert ended.wait(5.0) and commits.finish(0.0)
    assert positions.commits == 1 and commits.processed == 1
    assert list(commits.answers) == [(WHERE, 2)]
    assert commits.due(None)  # it waited during the first: it goes at once


def test_an_answer_let_go_while_its_transaction_runs_is_not_taken_back() -> None:
    """A rebalance may let go of a job whose answer is in flight (an orphan now): the
    transaction's end must not touch what the block holds in its place."""
    commits, broker, ended = _commits(), _SlowBroker(), threading.Event()
    commits.add((WHERE, 1), _answer("k", "fine"))
    thread = CommitThread("test-commit")
    _start(commits, _Positions([(WHERE, 1)]), broker, thread, ended)
    let_go = commits.answers.pop((WHERE, 1))
    again = _answer("k", "again")  # its record came back, and was answered anew
    commits.add((WHERE, 1), again)
    broker.release.set()
    assert commits.finish(None)
    assert commits.answers == {(WHERE, 1): again} and let_go is not again


def test_a_bug_in_a_transaction_is_raised_on_the_consume_thread_and_keeps_the_answers() -> None:
    commits, broker, ended = _commits(), _SlowBroker(), threading.Event()
    commits.add((WHERE, 1), _answer("k", "fine"))
    broker.fail, positions = RuntimeError("a bug"), _Positions([(WHERE, 1)])
    broker.release.set()
    thread = CommitThread("test-commit")
    _start(commits, positions, broker, thread, ended)
    with pytest.raises(RuntimeError, match="a bug"):
        commits.finish(None)
    assert not commits.in_flight and (WHERE, 1) in commits.answers
    assert positions.commits == 0


def test_a_transaction_ended_by_a_base_exception_commits_nothing() -> None:
    """Whatever ends a transaction other than a return (SystemExit, KeyboardInterrupt),
    its answers are kept, not taken for committed."""
    commits, broker, ended = _commits(), _SlowBroker(), threading.Event()
    commits.add((WHERE, 1), _answer("k", "fine"))
    broker.fail, positions = SystemExit(3), _Positions([(WHERE, 1)])
    broker.release.set()
    thread = CommitThread("test-commit")
    _start(commits, positions, broker, thread, ended)
    with pytest.raises(SystemExit):
        commits.finish(None)
    assert (WHERE, 1) in commits.answers and positions.commits == 0 and commits.processed == 0


def test_a_refusal_of_records_an_answer_no_longer_has_leaves_its_new_answer_alone() -> None:
    """A refusal names records by their place in the transaction as it was cut: a job
    answered anew while it ran (let go, taken up again) keeps its new answer for its next
    transaction, rather than losing a record it no longer has."""
    commits, broker, ended = _commits(), _SlowBroker(), threading.Event()
    slot = _answer("k", "BIG")
    commits.add((WHERE, 1), slot)
    broker.fail = RecordsRefused({0: "too large"}, frozenset({0}))
    thread = CommitThread("test-commit")
    _start(commits, _Positions([(WHERE, 1)]), broker, thread, ended)
    anew = _answer("k", "small")
    slot.records, slot.completion = anew.records, anew.completion  # answered anew meanwhile
    broker.release.set()
    assert commits.finish(None)
    assert slot.completion is not None and slot.completion.status is Status.SUCCEEDED
    assert slot.records is anew.records and (WHERE, 1) in commits.answers


class _Seat:
    """A group member whose metadata is counted, as ``GroupMember`` keeps it."""

    def __init__(self) -> None:
        self.asked = 0
        self.fences = 0

    def group_metadata(self) -> str:
        self.asked += 1
        return f"generation-{self.fences}"

    def fenced(self) -> None:
        self.fences += 1


class _FencingBroker:
    """Fences the first commit (the group moved on), takes the next; notes each group."""

    def __init__(self) -> None:
        self.groups: list[Any] = []

    def commit(self, group: Any, offsets: Any, records: Any, alone: Any, check: Any) -> None:
        self.groups.append(group)
        if len(self.groups) == 1:
            raise PartitionLost("ILLEGAL_GENERATION")


class _OffsetPositions(_Positions):
    def plan(self) -> CommitPlan:
        return CommitPlan([TopicPartition(*WHERE, 2)], list(self.keys), {})


def test_a_fenced_commit_has_the_seat_take_its_group_metadata_again() -> None:
    """The group metadata a commit fences its offsets with is the seat's (kept between
    commits); a fenced commit tells the seat, and the next one asks it again."""
    commits, broker, seat = _commits(), _FencingBroker(), _Seat()
    commits.add((WHERE, 1), _answer("k", "fine"))
    positions = _OffsetPositions([(WHERE, 1)])
    commits.commit(positions, broker, seat, {})  # type: ignore[arg-type]
    assert positions.commits == 0 and seat.fences == 1 and (WHERE, 1) in commits.answers
    commits.commit(positions, broker, seat, {})  # type: ignore[arg-type]
    assert positions.commits == 1 and not commits.answers
    assert broker.groups == ["generation-0", "generation-1"] and seat.asked == 2
