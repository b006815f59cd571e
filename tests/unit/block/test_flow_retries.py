"""A failed attempt's next one, as the consume thread schedules it (``block/flow.py``): one
whose worker died or ran out of time goes alone, since jobs under 25 ms share calls (issue
#15's review: in a shared call, each of its attempts cost two worker kills and the other
jobs a second run); one whose task raised may share a call again."""

from __future__ import annotations

import queue

import pytest

from computeinfra.block.backlog import JobQueue
from computeinfra.block.batching import BatchPlanner
from computeinfra.block.cancels import Cancels
from computeinfra.block.flow import Flow
from computeinfra.block.handover import Handover
from computeinfra.block.jobs import Failure
from computeinfra.block.lanes import LaneEvent
from computeinfra.block.middleware import MiddlewareChain
from computeinfra.block.middleware.retries import RetryPolicy
from computeinfra.block.slots import Slot, SlotMaker
from computeinfra.config import Settings
from computeinfra.protocol import FailureKind
from computeinfra.tasks.registry import load_registry

from .test_slots import _Message


def _retried(failure: Failure) -> Slot:
    """A job's first attempt ends with ``failure``; returns it once its retry is due."""
    hooks = MiddlewareChain([RetryPolicy(0.0, 0.0)])
    maker = SlotMaker(Settings(), load_registry(()), hooks, 0, None, Cancels())
    events: queue.SimpleQueue[LaneEvent] = queue.SimpleQueue()
    flow = Flow(Settings(), maker, hooks, JobQueue(BatchPlanner()), events, 0, None,
                Handover(0.0, lambda _seconds: False, 0))  # fmt: skip
    slot = maker.make(_Message())  # type: ignore[arg-type]
    events.put(LaneEvent(slot, failure))
    flow._collect(0.0)
    assert flow.backing_off
    assert list(flow._retries.due()) == [slot]
    assert slot.assignment is not None and slot.assignment.attempt == 2
    return slot


@pytest.mark.parametrize("kind", [FailureKind.WORKER_LOST, FailureKind.TIME_LIMIT])
def test_a_job_that_killed_its_worker_or_ran_out_of_time_tries_again_alone(
    kind: FailureKind,
) -> None:
    assert _retried(Failure(kind, "the worker process died")).alone


def test_a_job_whose_task_raised_may_share_a_call_again() -> None:
    assert not _retried(Failure("ValueError", "bad input")).alone
