"""What a cancel read (``cancels.py``) does to the jobs a block holds, step by step.

A job waiting for a worker or for its next attempt is taken off the queue or the retry
heap and answered ``cancelled``; one running is marked, for its lane to stop
(``lanes.py``), and answered ``cancelled`` however its attempt ends (``ran``);
one answered but not committed is answered ``cancelled`` instead before the next commit.
And every transaction checks, just before it commits, that the block has read every cancel
on the topic and that none names a job it answers otherwise: once a cancel is
acknowledged, no answer of its job but ``cancelled`` is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from computeinfra.config import Settings
from computeinfra.protocol import CANCEL_TOPIC, CancelRequest, Status

from .answers import cancelled, cancelled_instead
from .backlog import JobQueue
from .cancels import SETTLE_SECONDS, discard_written
from .jobs import Failure, Outcome
from .orphans import Key
from .retries import Retries
from .slots import Slot, SlotMaker

__all__ = ["Cancelling"]

_log = logging.getLogger("computeinfra.supervisor")
# How long answers are held while the block cannot tell it read every cancel (the broker
# does not answer where cancelJobs ends, or the reader does not get there); then they are
# committed anyway, and the block says so.
UNSETTLED_SECONDS = 30.0
GAVE_UP_LOOK_SECONDS = 0.1


class Cancelling:
    def __init__(
        self,
        settings: Settings,
        slots: SlotMaker,
        jobs: JobQueue,
        retries: Retries,
        block: int,
        node: str | None,
    ) -> None:
        self._settings, self._block, self._node = settings, block, node
        self._slots = slots
        self._cancels = slots.cancels
        self._jobs = jobs
        self._retries = retries
        self._unsettled_since: float | None = None  # monotonic
        self._gave_up = False
        self.unchecked = 0  # commits made without knowing every cancel was read

    def in_hand(self, pending: Mapping[Key, Slot], answered: Callable[[Slot], None]) -> None:
        """Answer ``cancelled`` the jobs in hand that fresh cancels name and that wait for
        a worker or a retry (``answered`` is told of each); mark those running."""
        fresh = set(self._cancels.fresh())
        if not fresh:
            return

        def asked(slot: Slot) -> CancelRequest | None:
            if slot.key not in fresh or slot.released or slot.assignment is None:
                return None
            return self._cancels.of(slot.assignment)

        def named(slot: Slot) -> bool:
            return asked(slot) is not None

        for slot in [*self._jobs.take_if(named), *self._retries.take_if(named)]:
            self._slots.cancel(slot, asked(slot) or CancelRequest())
            answered(slot)
        for slot in pending.values():
            if (cancel := asked(slot)) is not None:
                slot.cancel = cancel

    def ran(self, slot: Slot, result: Outcome | Failure) -> None:
        """Answer ``cancelled`` a job whose cancel came while it ran (its lane killed its
        worker, or it ended first): what it wrote is removed, its attempt counted."""
        assignment, asked = slot.assignment, slot.cancel
        assert assignment is not None and asked is not None
        outcome = result if isinstance(result, Outcome) else result.outcome
        outputs = outcome.outputs if outcome is not None else ()
        discard_written(self._settings, assignment.key, assignment.result_dir, outputs,
                        self._block)  # fmt: skip
        started = outcome.started_at if outcome is not None else slot.started_at
        completion = cancelled(assignment, asked, attempts=assignment.attempt,
                               started_at=started, block=self._block, node=self._node)  # fmt: skip
        self._slots.answer(slot, completion)

    def answered(self, slots: Iterable[Slot]) -> None:
        """Before a commit: answer ``cancelled`` instead the jobs answered otherwise whose
        cancel has been read since (``answered_instead``)."""
        for slot in slots:
            self.answered_instead(slot)

    def answered_instead(self, slot: Slot) -> bool:
        """Answer ``cancelled`` instead a job answered but not committed whose cancel was
        read since: the cancel was acknowledged before the answer could commit. What it
        wrote is removed. Whether it was."""
        completion = slot.completion
        if completion is None or (asked := self._cancels.missed(completion)) is None:
            return False
        if completion.attempts and completion.result_dir is not None:  # it ran: it wrote
            discard_written(self._settings, completion.key, completion.result_dir,
                            completion.outputs, self._block)  # fmt: skip
        self._slots.answer(slot, cancelled_instead(completion, asked))
        return True

    def check(self, slots: Sequence[Slot]) -> bool:
        """Asked in each transaction just before it commits: every cancel on the topic has
        been read, and none names a job the transaction answers otherwise. Else the
        transaction is withdrawn, and the next one answers that job ``cancelled``
        (``answered``). A transaction with no such answer (statuses only) needs no look."""
        answers = [s.completion for s in slots if s.completion is not None]
        answers = [c for c in answers if c.status is not Status.CANCELLED]
        if not answers:
            return True
        # Once given up, each commit looks briefly: the block must not crawl meanwhile.
        look = GAVE_UP_LOOK_SECONDS if self._gave_up else SETTLE_SECONDS
        if self._cancels.settled(look):
            self._unsettled_since, self._gave_up = None, False
        elif not self._give_up():
            return False
        return not any(self._cancels.missed(c) for c in answers)

    def _give_up(self) -> bool:
        """Whether to commit without knowing that every cancel was read: only after
        ``UNSETTLED_SECONDS`` of not knowing (a broken topic must not stop every answer)."""
        now = time.monotonic()
        if self._unsettled_since is None:
            self._unsettled_since = now
            _log.warning("block %s: cannot tell that %s was read to its end; holding the "
                         "answers", self._block, CANCEL_TOPIC)  # fmt: skip
        if now - self._unsettled_since < UNSETTLED_SECONDS:
            return False
        self.unchecked += 1
        if not self._gave_up:
            self._gave_up = True
            _log.error("block %s: %s not read to its end for %.0f s; committing anyway (a "
                       "cancel acknowledged meanwhile may be missed)", self._block, CANCEL_TOPIC,
                       now - self._unsettled_since)  # fmt: skip
        return True
