"""When a block stops fetching (``block/backlog.py``): on queued work, not on a count, so
that a poll's worth of quick jobs never pauses it (issue #13: pausing at one poll's 200
no-op jobs cut throughput from about 2,700 to 780 jobs/s)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from computeinfra.block.backlog import HORIZON_SECONDS, MAX_POLLS_QUEUED, Backlog, JobQueue
from computeinfra.block.batching import BatchPlanner
from computeinfra.block.jobs import Assignment, Outcome
from computeinfra.block.slots import Slot
from computeinfra.protocol import Status

BATCH = 200


def _slots(task: str, count: int) -> list[Slot]:
    def one() -> Slot:
        assignment = Assignment(key="k", task=task, payload=None, result_dir="d", submitted_at=None)  # type: ignore[arg-type]
        return Slot(message=None, assignment=assignment)  # type: ignore[arg-type]

    return [one() for _ in range(count)]


def _timed(planner: BatchPlanner, task: str, seconds: float) -> None:
    now = time.time()
    planner.observe(
        task, Outcome(status=Status.SUCCEEDED, started_at=now - seconds, finished_at=now)
    )


def _queue(**timed: float) -> JobQueue:
    planner = BatchPlanner()
    for task, seconds in timed.items():
        _timed(planner, task, seconds)
    return JobQueue(planner)


def test_a_polls_worth_of_quick_jobs_does_not_pause_but_ten_polls_do() -> None:
    jobs = _queue(noop=0.00001)
    backlog = Backlog(jobs, BATCH, workers=1)
    jobs.put(_slots("noop", BATCH))
    assert not backlog.full(retrying=0)
    jobs.put(_slots("noop", BATCH * (MAX_POLLS_QUEUED - 1)))
    assert backlog.full(retrying=0)


def test_longer_jobs_pause_once_they_fill_the_horizon_and_resume_under_half() -> None:
    jobs = _queue(slow=0.6)
    backlog = Backlog(jobs, BATCH, workers=2)  # 2 workers: 2 x HORIZON_SECONDS of work
    assert HORIZON_SECONDS == 1.0
    jobs.put(_slots("slow", 3))
    assert not backlog.full(retrying=0)  # 1.8 s
    jobs.put(_slots("slow", 1))
    assert backlog.full(retrying=0)  # 2.4 s
    assert len(jobs.take(0.1)) == 1 and backlog.full(retrying=0)  # 1.8 s: over half
    jobs.take(0.1)
    jobs.take(0.1)
    assert not backlog.full(retrying=0)  # 0.6 s


def test_a_job_of_a_task_not_timed_yet_counts_as_one_workers_horizon() -> None:
    jobs = _queue()
    backlog = Backlog(jobs, BATCH, workers=2)
    assert not backlog.full(retrying=0)
    jobs.put(_slots("new", 1))
    assert not backlog.full(retrying=0)  # one worker's worth: the other one may take more
    jobs.put(_slots("new", 1))
    assert backlog.full(retrying=0)


def test_a_job_awaiting_a_retry_does_not_pause_a_block_with_idle_workers() -> None:
    # A retry waits out its backoff (up to 30 s) off the queue: it is no work for the
    # block's workers until it comes back, so the other jobs of its partitions must flow
    # (a review found one retrying job paused every partition of its block).
    jobs = _queue(noop=0.00001)
    backlog = Backlog(jobs, BATCH, workers=1)
    assert not backlog.full(retrying=1)
    jobs.put(_slots("noop", BATCH))
    assert not backlog.full(retrying=BATCH)
    # They still count toward the cap on jobs held, which bounds memory.
    assert backlog.full(retrying=BATCH * MAX_POLLS_QUEUED)


def test_the_work_queued_follows_every_way_a_job_leaves_the_queue() -> None:
    jobs = _queue(a=0.1, b=0.2)
    a, b = _slots("a", 3), _slots("b", 2)
    jobs.put([*a, *b])
    assert jobs.work(untimed=9.0) == pytest.approx((3 * 0.1005 + 2 * 0.2005), abs=1e-5)
    taken = jobs.take_if(lambda slot: slot in b)
    assert taken == b and jobs.work(untimed=9.0) == pytest.approx(3 * 0.1005, abs=1e-5)
    a[0].released = True
    # a[0] is dropped; a[1] is taken alone (its task is not quick enough to share a call).
    assert jobs.take(0.1) == [a[1]] and jobs.work(untimed=9.0) == pytest.approx(0.1005, abs=1e-5)
    jobs.put_front(b)
    assert jobs.work(untimed=9.0) == pytest.approx((0.1005 + 2 * 0.2005), abs=1e-5)
    jobs.clear()
    assert jobs.work(untimed=9.0) == 0.0


def test_a_job_to_be_sent_alone_never_shares_a_call() -> None:
    jobs = _queue(noop=0.00001)
    slots = _slots("noop", 4)
    slots[1].alone = True
    jobs.put(slots)
    assert jobs.take(0.1) == slots[:1]
    assert jobs.take(0.1) == slots[1:2]
    assert jobs.take(0.1) == slots[2:]


def _limited(task: str, limits: list[float | None]) -> list[Slot]:
    slots = _slots(task, len(limits))
    for slot, limit in zip(slots, limits, strict=True):
        assert slot.assignment is not None
        slot.assignment = dataclasses.replace(slot.assignment, time_limit=limit)
    return slots


def test_only_jobs_of_one_time_limit_share_a_call() -> None:
    """A call's time limit is its jobs' one, from the call's start (``pipeline.py``): a
    job of 1 s limit beside ones of 600 s would get 600, one of no limit would give the
    others none (issue #15's review)."""
    jobs = _queue(image=0.012)
    slots = _limited("image", [600.0, 600.0, 1.0, None, None, 600.0])
    jobs.put(slots)
    assert [jobs.take(0.1) for _ in range(4)] == [slots[:2], slots[2:3], slots[3:5], slots[5:]]


def test_a_job_with_a_short_time_limit_goes_alone() -> None:
    """The jobs ahead of it in a call would eat a limit under 20 calls' budget away."""
    jobs = _queue(image=0.012)
    slots = _limited("image", [1.5, 1.5, 1.5])
    jobs.put(slots)
    assert [jobs.take(0.1) for _ in range(3)] == [[slot] for slot in slots]
