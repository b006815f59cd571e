"""An attempt's result, judged: the job's answer, or its next attempt after a backoff.

The consume thread (``flow.py``) hands each result here. A job cancelled while it ran is
answered ``cancelled`` however its attempt ended; a task that ran to an end teaches the
queue its run time (``batching.py``); a failure goes to the retry policy, whose delay
queues the next attempt in ``Retries`` (``None``: the failure is the job's answer). Any
error in a hook or in here answers the job; none skips it.
"""

from __future__ import annotations

import enum
import logging
import time

from computeinfra.protocol import FailureKind

from .answers import complete
from .backlog import JobQueue
from .cancelling import Cancelling
from .jobs import Failure, Outcome, judge
from .middleware import HookError, MiddlewareChain
from .pipeline import Result
from .retries import Retries
from .slots import Slot, SlotMaker

__all__ = ["ALONE_AFTER", "Attempts", "Verdict"]

_log = logging.getLogger("computeinfra.supervisor")
# Failures after which a job's next attempt goes in a call of its own.
ALONE_AFTER = frozenset({FailureKind.WORKER_LOST, FailureKind.TIME_LIMIT})


class Verdict(enum.Enum):
    ANSWERED = "answered"  # the slot holds its completion
    RETRYING = "retrying"  # its next attempt waits out the policy's delay in ``Retries``
    PASS_ON = "pass_on"  # to be tried again, not here: this block is draining


class Attempts:
    def __init__(
        self,
        slots: SlotMaker,
        hooks: MiddlewareChain,
        jobs: JobQueue,
        cancelling: Cancelling,
        retries: Retries,
        block: int,
        node: str | None,
    ) -> None:
        self._slots, self._hooks, self._jobs = slots, hooks, jobs
        self._cancelling, self._retries = cancelling, retries
        self._block, self._node = block, node

    def may_start(self, slot: Slot) -> bool:
        """Whether ``slot``'s next attempt may go to a worker: a ``before_dispatch`` hook
        that raises answers it instead."""
        assignment = slot.assignment
        assert assignment is not None
        try:
            self._hooks.before_dispatch(assignment)
        except HookError as error:
            self._slots.answer_hook_error(slot, error, attempts=assignment.attempt - 1)
            return False
        return True

    def settle(self, slot: Slot, result: Result, draining: bool) -> Verdict:
        """Answer ``slot`` with its attempt's ``result``, or schedule its next attempt."""
        assignment = slot.assignment
        assert assignment is not None
        try:
            if slot.cancel is not None:  # however the attempt ended: it was cancelled
                self._cancelling.ran(slot, result)
                return Verdict.ANSWERED
            judged = judge(result)
            ran = judged if isinstance(judged, Outcome) else judged.outcome
            if ran is not None:  # the task ran to an end: its time says if it is quick
                self._jobs.observe(assignment.task, ran)
            if isinstance(judged, Failure):
                verdict = self._retry(slot, judged, draining)
                if verdict is not None:
                    return verdict
                judged = judged.final_outcome(slot.started_at or time.time())
            completion = complete(assignment, judged, block=self._block, node=self._node)
            self._slots.answer(slot, completion)
        except HookError as error:
            self._slots.answer_hook_error(slot, error, attempts=assignment.attempt)
        except Exception as exc:  # a bug must still answer the job, never skip it
            _log.exception("block %s: internal error on %s", self._block, assignment.key)
            self._slots.answer_error(slot, exc)
        return Verdict.ANSWERED

    def _retry(self, slot: Slot, failure: Failure, draining: bool) -> Verdict | None:
        """How ``slot`` is tried again (after the policy's delay); ``None``: it is not."""
        assignment = slot.assignment
        assert assignment is not None
        self._hooks.on_attempt_failed(assignment, failure)
        delay = self._hooks.retry_delay(assignment, failure)
        if delay is None:
            return None
        if draining:  # not here: another block tries again, its attempt counted
            return Verdict.PASS_ON
        slot.assignment = assignment.next_attempt()
        slot.started_at = None  # the next attempt has not started
        # A job that killed its worker or ran out of time tries again alone: in a shared
        # call it would cost the others a second run, and itself an uncounted one.
        slot.alone = slot.alone or failure.type in ALONE_AFTER
        self._retries.add(slot, delay)
        return Verdict.RETRYING
