"""Sharing a queue with idle blocks (``handover.Handover.share``, ``peers.py``), without a
cluster: the newest jobs of a long queue go to the partitions of a block whose workers ran
out of work, about half of them for one idle worker beside one busy one; a short queue, a
peer idle since before the queue, a retry and a job handed over too often stay."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from computeinfra.block.backlog import JobQueue
from computeinfra.block.batching import BatchPlanner
from computeinfra.block.handover import (
    HANDOVERS_HEADER,
    MAX_HANDOVERS,
    SHARE_IDLE_LONG_SECONDS,
    SHARE_IDLE_SECONDS,
    Handover,
    starving,
)
from computeinfra.block.jobs import Outcome
from computeinfra.block.peers import STALE_SECONDS, Peer, PeerBoard, PeerLoad, load_of
from computeinfra.block.slots import FORWARDED_BY_HEADER, Slot
from computeinfra.protocol import Status
from tests.unit.block.test_lanes import _slot

TIMEOUT = 10.0
MINE = {("pendingJobs", 0), ("pendingJobs", 1)}
THEIRS = frozenset({("pendingJobs", 2), ("pendingJobs", 3)})


def _timed_queue(
    seconds: float, count: int, headers: list[tuple[str, bytes]] | None = None
) -> JobQueue:
    jobs = JobQueue(BatchPlanner())
    now = time.time()
    jobs.observe(
        "crunch", Outcome(status=Status.SUCCEEDED, started_at=now - seconds, finished_at=now)
    )
    jobs.put([_slot(f"job-{i}", task="crunch", headers=headers) for i in range(count)])
    return jobs


class _Peers:
    """What the cluster's reader gives: one block, its workers idle from the first reading
    (``idle`` of them; 0: busy)."""

    def __init__(self, idle: int = 1) -> None:
        self.idle = idle
        self.idle_from: float | None = None
        self.reads = 0
        self.read = threading.Event()

    @property
    def load(self) -> PeerLoad:
        now = time.monotonic()
        if self.idle and self.idle_from is None:
            self.idle_from = now
        seconds = now - self.idle_from if self.idle and self.idle_from is not None else 0.0
        return PeerLoad("block-b", self.idle, seconds, THEIRS)

    def __call__(self) -> list[PeerLoad]:
        self.reads += 1
        self.read.set()
        return [self.load]


def _take_until(handover: Handover, jobs: JobQueue) -> list[Slot]:
    """Ask until the board has read the peer and it counts as idle long enough."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        taken = handover.take(jobs, None, MINE)  # type: ignore[arg-type]
        if taken:
            return taken
        time.sleep(0.005)  # polling a condition with a deadline
    return []


def test_the_newest_half_of_a_long_queue_goes_to_a_block_that_ran_out_of_work() -> None:
    jobs = _timed_queue(0.05, 10)  # 0.5 s of work for one worker
    peers = _Peers()  # ran out after these were queued
    board = PeerBoard(peers)
    handover = Handover(2.0, lambda seconds: False, block=0, workers=1, board=board)
    try:
        taken = _take_until(handover, jobs)
        assert [s.key for s in taken] == [f"job-{i}" for i in range(5, 10)]
        assert len(jobs) == 5 and handover.handed_over == 5
        assert {(s.records[0].topic, s.records[0].partition) for s in taken} == set(THEIRS)
        assert all(s.assignment is None for s in taken)
        forwarded = dict(taken[0].records[0].headers)
        assert forwarded[HANDOVERS_HEADER] == b"1"
        assert b"idle workers" in forwarded[FORWARDED_BY_HEADER]
        # Offered: nothing more until it is seen busy and then idle again.
        assert handover.take(jobs, None, MINE) == []  # type: ignore[arg-type]
    finally:
        board.stop()


def test_a_short_queue_is_neither_shared_nor_asks_its_peers() -> None:
    jobs = _timed_queue(0.01, 10)  # 0.1 s of work: over before a job handed over starts
    peers = _Peers()
    board = PeerBoard(peers)
    try:
        handover = Handover(2.0, lambda seconds: False, block=0, board=board)
        assert handover.take(jobs, None, MINE) == []  # type: ignore[arg-type]
        assert not peers.read.wait(0.2) and len(jobs) == 10
    finally:
        board.stop()


def test_retries_and_jobs_handed_over_too_often_stay() -> None:
    jobs = _timed_queue(0.05, 10, headers=[(HANDOVERS_HEADER, str(MAX_HANDOVERS).encode())])
    retry = _slot("retry", task="crunch")
    assert retry.assignment is not None
    retry.assignment = retry.assignment.next_attempt()
    jobs.put([retry])
    peers = _Peers()  # ran out after these were queued
    board = PeerBoard(peers)
    try:
        handover = Handover(2.0, lambda seconds: False, block=0, board=board)
        deadline = time.monotonic() + TIMEOUT
        # Until the peer was read and counts as starving: any other job would have gone.
        while time.monotonic() < deadline and not (
            board.idle() and starving(board.idle()[0], 0.0, time.monotonic())
        ):
            assert handover.take(jobs, None, MINE) == []  # type: ignore[arg-type]
            time.sleep(0.005)  # polling a condition with a deadline
        assert board.idle()
        assert handover.take(jobs, None, MINE) == [] and len(jobs) == 11  # type: ignore[arg-type]
        assert handover.handed_over == 0
    finally:
        board.stop()


def test_a_peer_idle_since_before_the_queue_waits_for_a_long_wait() -> None:
    """At a batch's start a peer may look idle only because its own records are still on
    their way: it is given jobs only once this board has seen it idle a long while."""
    now = time.monotonic()
    queued = now - 0.5

    def peer(idle_since: float, seen: float) -> Peer:
        return Peer("b", 1, idle_since, seen, THEIRS)

    assert not starving(peer(now - 60.0, now - SHARE_IDLE_LONG_SECONDS / 2), queued, now)
    assert starving(peer(now - 60.0, now - SHARE_IDLE_LONG_SECONDS), queued, now)
    # One that ran out while the queue waited: idle a moment is between two fetches.
    assert not starving(peer(now - SHARE_IDLE_SECONDS / 2, now), queued, now)
    assert starving(peer(now - 2 * SHARE_IDLE_SECONDS, now), queued, now)


def test_a_peer_given_jobs_gets_more_only_once_seen_busy_and_idle_again() -> None:
    peers = _Peers()
    board = PeerBoard(peers)

    def wanting(check: Callable[[], object]) -> Callable[[], object]:
        def again() -> object:
            board.want()  # as a block with a long queue does on each step
            return check()

        return again

    try:
        _until(wanting(board.idle), "the idle peer read")
        board.offered("block-b")
        assert board.idle() == []  # it may not have them yet
        peers.idle, peers.idle_from = 0, None  # now it has them
        reads = peers.reads
        _until(wanting(lambda: peers.reads > reads + 1), "a reading that saw it busy")
        assert board.idle() == []
        peers.idle = 1
        _until(wanting(board.idle), "idle again, and offered again")
        assert [p.member for p in board.idle()] == ["block-b"]
    finally:
        board.stop()


def test_loads_read_long_ago_are_not_used() -> None:
    board = PeerBoard(_Peers())
    try:
        board.want()
        _until(lambda: board.idle(), "the idle peer read")
        board._peers = (board._peers[0], time.monotonic() - 2 * STALE_SECONDS)
        assert board.idle() == []
    finally:
        board.stop()


def test_with_several_idle_peers_the_shares_add_up_to_the_fair_count() -> None:
    jobs = _timed_queue(0.05, 12)
    theirs = [frozenset({("pendingJobs", p)}) for p in (2, 3, 4)]
    board = PeerBoard(lambda: [PeerLoad(f"p{i}", 1, 0.5, t) for i, t in enumerate(theirs)])
    handover = Handover(2.0, lambda seconds: False, block=0, workers=1, board=board)
    try:
        taken = _take_until(handover, jobs)
        assert len(taken) == 12 * 3 // 4 and len(jobs) == 3  # each worker about 3 jobs
        assert {s.records[0].partition for s in taken} == {2, 3, 4}
    finally:
        board.stop()


def _until(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"waited {TIMEOUT} s for {what}"
        time.sleep(0.005)  # polling a condition with a deadline


def test_a_board_whose_reader_fails_goes_on_and_stops() -> None:
    calls = threading.Semaphore(0)

    def failing() -> list[PeerLoad]:
        calls.release()
        raise RuntimeError("a peer's actor is gone")

    board = PeerBoard(failing)
    board.want()
    assert calls.acquire(timeout=TIMEOUT) and board.idle() == []
    board.want()
    assert calls.acquire(timeout=TIMEOUT)  # read again: the failure ended nothing
    board.stop()
    assert board._thread is not None
    board._thread.join(TIMEOUT)
    assert not board._thread.is_alive()


def test_a_block_counts_its_idle_workers_only_while_nothing_waits_there() -> None:
    owned = frozenset({("pendingJobs", 0)})
    since = time.monotonic() - 0.3
    load = load_of("a", True, [None, since, since + 0.1], owned)
    assert (load.member, load.idle, load.partitions) == ("a", 2, owned)
    assert 0.3 <= load.idle_seconds < 0.3 + TIMEOUT  # the first idle one's time
    assert load_of("a", False, [since], owned).idle == 0  # records queued, or paused
    assert load_of("a", True, [None, None], owned).idle == 0  # every worker busy
