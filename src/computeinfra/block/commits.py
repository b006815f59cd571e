"""Answers waiting for a transaction: when one is due, and committing them.

A transaction carries every answer ready that fits in its partition's map of answered
offsets (``positions.py``), and what the middleware publishes beside them (a job's
``running``). It is due once the oldest answer, or the first job sent to a worker since the
last one, has waited ``commit_window``; at once when nothing else is running; or when
``MAX_ANSWERS_PER_TRANSACTION`` are ready. A commit the group fenced is kept and tried again
after the rebalance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from confluent_kafka import Consumer

from .middleware import MiddlewareChain
from .orphans import Key
from .positions import Positions
from .slots import Slot
from .transaction import Outbox, PartitionLost

__all__ = ["MAX_ANSWERS_PER_TRANSACTION", "Commits"]

_log = logging.getLogger("computeinfra.supervisor")
MAX_ANSWERS_PER_TRANSACTION = 1000
FENCED_PAUSE_SECONDS = 0.2


class Commits:
    def __init__(self, hooks: MiddlewareChain, window: float, block: int) -> None:
        self._hooks = hooks
        self._window = window
        self._block = block
        self.answers: dict[Key, Slot] = {}  # answered, not committed
        self._answers_since = 0.0  # monotonic: when the oldest answer was ready
        self._dispatched_since = 0.0  # the first dispatch since the last commit, or 0
        self._after = 0.0  # after a fenced commit: let the rebalance end first
        self.processed = 0

    def add(self, key: Key, slot: Slot) -> None:
        slot.answered_at = time.monotonic()
        if not self.answers:
            self._answers_since = slot.answered_at
        self.answers[key] = slot

    def dispatched(self) -> None:
        """A job was sent to the workers: its ``running`` goes in the next transaction."""
        if not self._dispatched_since:
            self._dispatched_since = time.monotonic()

    def since(self) -> float:
        """Since when something waits for a transaction, or 0."""
        waiting = [t for t in (self._answers_since if self.answers else 0.0,
                               self._dispatched_since) if t]  # fmt: skip
        return min(waiting, default=0.0)

    def due(self, running: bool) -> bool:
        """Whether to commit now; ``running``: jobs are still in hand."""
        since = self.since()
        if not since or time.monotonic() < self._after:
            return False
        return (
            not running
            or time.monotonic() - since >= self._window
            or len(self.answers) >= MAX_ANSWERS_PER_TRANSACTION
        )

    def commit(
        self, positions: Positions, outbox: Outbox, consumer: Consumer, in_hand: Collection[str]
    ) -> None:
        """Commit the answers in hand that fit, with their partitions' offsets, and what the
        middleware publishes with them (``in_hand``: the keys of the jobs still held)."""
        plan = positions.plan()
        extra = self._hooks.commit_records(in_hand)
        self._dispatched_since = 0.0
        if not plan.answers and not extra:
            # None fits yet (a crowded map): wait a window, do not spin.
            self._answers_since = time.monotonic()
            return
        slots = [self.answers[key] for key in plan.answers]
        try:
            records = [*extra, *(record for slot in slots for record in slot.records)]
            outbox.commit(consumer, plan.offsets, records)
        except PartitionLost as lost:
            # Kept: the next poll completes the rebalance; what is still ours commits then.
            _log.warning("block %s: commit fenced (%s); trying again", self._block, lost)
            # The middleware's records are not kept: a job let go in the rebalance must not
            # show running after its new owner answered it (one still held just shows
            # pending until its answer).
            self._after = time.monotonic() + FENCED_PAUSE_SECONDS
            return
        positions.committed(plan)
        if not plan.answers:  # only middleware records: the answers' window is unchanged
            return
        for key in plan.answers:
            del self.answers[key]
        # The oldest answer left: those ready during this transaction have waited already,
        # and go in the next one at once (not a window after this one ended).
        self._answers_since = min((s.answered_at for s in self.answers.values()), default=0.0)
        self.processed += len(slots)
        for slot in slots:
            if slot.completion is not None:
                self._hooks.after_completion(slot.completion)
