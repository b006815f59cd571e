"""Which jobs share one worker call (``block/batching.py``): jobs of about 10 ms share one,
up to the call's budget (issue #15: one call per 10 ms image cost the supervisor 2 ms of
CPU each, half of it Ray's); a longer job, or one of a task not timed yet, goes alone."""

from __future__ import annotations

import time

from computeinfra.block.batching import CALL_BUDGET_SECONDS, MAX_JOBS_PER_CALL, BatchPlanner
from computeinfra.block.jobs import Outcome
from computeinfra.protocol import Status


def _planner(**timed: float) -> BatchPlanner:
    planner = BatchPlanner()
    now = time.time()
    for task, seconds in timed.items():
        outcome = Outcome(status=Status.SUCCEEDED, started_at=now - seconds, finished_at=now)
        planner.observe(task, outcome)
    return planner


def test_jobs_of_ten_milliseconds_share_a_call_up_to_its_budget() -> None:
    planner = _planner(image=0.012)
    assert planner.take(["image"] * 10) == int(CALL_BUDGET_SECONDS // 0.012) == 8


def test_quick_jobs_share_a_call_up_to_its_cap() -> None:
    assert _planner(noop=0.00001).take(["noop"] * 100) == MAX_JOBS_PER_CALL


def test_a_longer_job_an_untimed_one_or_a_long_one_behind_goes_alone_or_ends_the_call() -> None:
    planner = _planner(image=0.012, render=0.4)
    assert planner.take(["render", "image", "image"]) == 1
    assert planner.take(["new-task", "image"]) == 1
    assert planner.take(["image", "image", "render", "image"]) == 2
    assert planner.take(["image", "new-task"]) == 1


def test_a_task_that_slows_down_stops_sharing_calls() -> None:
    planner = _planner(image=0.012)
    now = time.time()
    for _ in range(20):  # the running average follows it
        planner.observe("image", Outcome(status=Status.SUCCEEDED, started_at=now - 0.2,
                                         finished_at=now))  # fmt: skip
    assert planner.take(["image"] * 10) == 1
