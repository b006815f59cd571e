"""An attempt's result as the consume thread judges it (``block/attempts.py``): without a
cluster, from plain parts."""

from __future__ import annotations

from computeinfra.block.attempts import Attempts, Verdict
from computeinfra.block.backlog import JobQueue
from computeinfra.block.batching import BatchPlanner
from computeinfra.block.cancelling import Cancelling
from computeinfra.block.cancels import Cancels
from computeinfra.block.jobs import Assignment, Failure
from computeinfra.block.middleware import Middleware, MiddlewareChain
from computeinfra.block.middleware.retries import RetryPolicy
from computeinfra.block.retries import Retries
from computeinfra.block.slots import Slot, SlotMaker
from computeinfra.config import Settings
from computeinfra.protocol import FailureKind, Status
from computeinfra.tasks.registry import load_registry

from .test_slots import _Message


class _Refuses(Middleware):
    def before_dispatch(self, assignment: Assignment) -> None:
        raise RuntimeError("no workers for you")


class _BrokenPolicy(Middleware):
    def retry_delay(self, assignment: Assignment, failure: Failure) -> float | None:
        raise RuntimeError("policy bug")


def _parts(*middleware: Middleware, max_attempts: int = 3) -> tuple[Attempts, Slot, Retries]:
    hooks = MiddlewareChain(list(middleware))
    settings = Settings()
    maker = SlotMaker(settings, load_registry(()), hooks, 0, None, Cancels())
    jobs, retries = JobQueue(BatchPlanner()), Retries()
    cancelling = Cancelling(settings, maker, jobs, retries, 0, None)
    slot = maker.make(_Message(max_attempts=max_attempts))  # type: ignore[arg-type]
    return Attempts(maker, hooks, jobs, cancelling, retries, 0, None), slot, retries


def test_a_dispatch_hook_that_raises_answers_that_job() -> None:
    attempts, slot, _ = _parts(_Refuses())
    assert not attempts.may_start(slot)
    completion = slot.completion
    assert completion is not None and completion.status is Status.FAILED
    assert completion.error is not None and "no workers for you" in completion.error.message
    assert completion.attempts == 0  # it never reached a worker


def test_a_failure_the_policy_retries_waits_in_retries_with_its_next_attempt() -> None:
    attempts, slot, retries = _parts(RetryPolicy(0.0, 0.0))
    verdict = attempts.settle(slot, Failure(FailureKind.WORKER_LOST, "died"), draining=False)
    assert verdict is Verdict.RETRYING
    assert retries.due() == [slot] and slot.completion is None
    assert slot.assignment is not None and slot.assignment.attempt == 2


def test_a_draining_block_passes_a_retry_on_instead_of_keeping_it() -> None:
    attempts, slot, retries = _parts(RetryPolicy(0.0, 0.0))
    verdict = attempts.settle(slot, Failure("ValueError", "bad input"), draining=True)
    assert verdict is Verdict.PASS_ON
    assert not retries and slot.completion is None
    assert slot.assignment is not None and slot.assignment.attempt == 1  # counted by the next


def test_the_last_attempt_s_failure_is_the_job_s_answer() -> None:
    attempts, slot, retries = _parts(RetryPolicy(0.0, 0.0), max_attempts=1)
    verdict = attempts.settle(slot, Failure(FailureKind.WORKER_LOST, "died"), draining=False)
    assert verdict is Verdict.ANSWERED and not retries
    completion = slot.completion
    assert completion is not None and completion.status is Status.FAILED
    assert completion.error is not None and completion.error.type == FailureKind.WORKER_LOST


def test_a_retry_policy_that_raises_answers_the_job_with_its_error() -> None:
    attempts, slot, retries = _parts(_BrokenPolicy())
    verdict = attempts.settle(slot, Failure("ValueError", "bad input"), draining=False)
    assert verdict is Verdict.ANSWERED and not retries
    completion = slot.completion
    assert completion is not None and completion.status is Status.FAILED
    assert completion.error is not None and "policy bug" in completion.error.message
