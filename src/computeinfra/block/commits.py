"""Answers waiting for a transaction: when one is due, and committing them.

A transaction carries every answer ready that fits in its partition's map of answered
offsets (``positions.py``), and what the middleware publishes beside them (a job's
``running``). A transaction costs the broker and the supervisor about the same whether it
carries one answer or a hundred (issue #15: 4 to 5 ms of CPU, against 10 ms of work for an
image job), so an answer may wait for the next ones, but only while one is expected soon:

- an answer may wait ``RUN_MULTIPLE`` times its own run time, at least ``commit_window``
  and at most ``commit_window_max``;
- it waits only while another answer is expected before that (``soon``: the lanes'
  estimate from the tasks' recent run times; a running job of a task not timed yet may end
  any moment, and so may a job queued while no call runs); otherwise, with nothing running
  or queued (jobs waiting out a retry's backoff are not waited for), the transaction is due
  at once;
- and at once when ``MAX_ANSWERS_PER_TRANSACTION`` are ready, or when the middleware has
  records due (``records_due``), answers or not.

So a 10 ms job shares its transaction with those ending within 50 ms, a no-op job arriving
alone is answered at once, and a job of a second is not held back for the next one (unless
that one runs past its estimate: then for the window at most). A commit the group fenced is
kept and tried again after the rebalance.

A transaction runs on the block's commit thread (``start``), and its outcome is applied on
the consume thread (``finish``); none is due while one is in flight, so they keep order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from .commit_thread import CommitThread
from .membership import GroupMember
from .middleware import MiddlewareChain
from .orphans import Key
from .positions import CommitPlan, Positions
from .records import OutboxRecord, PartitionLost, RecordsRefused, Withdrawn
from .refusals import owners, smaller
from .slots import Slot
from .transaction import Outbox

__all__ = ["MAX_ANSWERS_PER_TRANSACTION", "RUN_MULTIPLE", "Commits"]

_log = logging.getLogger("computeinfra.supervisor")
MAX_ANSWERS_PER_TRANSACTION = 1000
# How many times its own run time an answer may wait for others (within the windows).
RUN_MULTIPLE = 5.0
FENCED_PAUSE_SECONDS = 0.2
# Kafka refused even an answer made small: the topic takes none (misconfigured); wait.
REFUSED_PAUSE_SECONDS = 5.0
# A commit withdrawn by its check (a cancel just read, or cancelJobs not read to its end
# yet): a short pause, so that a check failing at once does not spin transactions.
WITHDRAWN_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class _Batch:
    """One transaction as cut: its plan, the answers it carries and what is sent."""

    positions: Positions
    plan: CommitPlan
    slots: list[Slot]
    extra: list[OutboxRecord]  # the middleware's records, first in ``records``
    records: list[OutboxRecord]
    alone: set[int]
    last: Callable[[], bool] | None  # the check, asked just before the commit
    group: Any  # the consumer's group metadata (taken again at each rebalance)
    seat: GroupMember  # told when the group fenced the commit
    # Each record's job (None: the middleware's) and index in that job's records, and each
    # job's records as sent (by slot id): a job let go and taken up again while the
    # transaction ran may have other records by the time a refusal names an index.
    owners: list[tuple[Slot | None, int]]
    sent: dict[int, list[OutboxRecord]]


class Commits:
    def __init__(
        self, hooks: MiddlewareChain, window: float, block: int, window_max: float = 0.0
    ) -> None:
        self._hooks = hooks
        self._window = window
        self._window_max = max(window, window_max)
        self._block = block
        self.answers: dict[Key, Slot] = {}  # answered, not committed
        self._answers_since = 0.0  # monotonic: when the oldest answer was ready
        self._due = 0.0  # monotonic: the soonest an answer in hand may have waited enough
        self._after = 0.0  # after a fenced commit: let the rebalance end first
        # Jobs (``id`` of their slot) whose records Kafka refused in a batch: until a commit
        # succeeds, each of their records goes in a request of its own, so that a refusal
        # names the record refused, not the batch it was in.
        self._suspects: set[int] = set()
        self._carry: list[OutboxRecord] = []  # the middleware's, from an aborted commit
        self.processed = 0
        self.withdrawn = 0  # commits withdrawn by their check
        # The transaction on the commit thread (``start``), and its outcome to come.
        self._flight: tuple[_Batch, Future[None]] | None = None

    def add(self, key: Key, slot: Slot) -> None:
        slot.answered_at = time.monotonic()
        due = slot.answered_at + self._may_wait(slot)
        if not self.answers:
            self._answers_since, self._due = slot.answered_at, due
        self._due = min(self._due, due)
        self.answers[key] = slot

    def _may_wait(self, slot: Slot) -> float:
        """How long ``slot``'s answer may wait for others: ``RUN_MULTIPLE`` times its run."""
        done = slot.completion
        ran = 0.0 if done is None or done.started_at is None else done.finished_at - done.started_at
        return min(max(RUN_MULTIPLE * ran, self._window), self._window_max)

    def _deadline(self, soon: float | None) -> float | None:
        """When (monotonic) the next transaction is due, or ``None``; ``soon``: when the
        next answer is expected (``None``: none is, nothing running or queued)."""
        if self._flight is not None:  # the next is cut once this one has ended
            return None
        deadlines = [when for when in (self._hooks.records_due(),) if when is not None]
        if self.answers:
            full = len(self.answers) >= MAX_ANSWERS_PER_TRANSACTION
            waits = not full and soon is not None and soon < self._due
            deadlines.append(self._due if waits else self._answers_since)
        if not deadlines:
            return None
        return max(min(deadlines), self._after)

    def due(self, soon: float | None) -> bool:
        """Whether to commit now; ``soon``: when the next answer is expected (monotonic)."""
        deadline = self._deadline(soon)
        return deadline is not None and time.monotonic() >= deadline

    def wait(self, soon: float | None) -> float | None:
        """Seconds until a commit is due (0: now), or ``None`` if nothing waits for one."""
        deadline = self._deadline(soon)
        return None if deadline is None else max(deadline - time.monotonic(), 0.0)

    @property
    def in_flight(self) -> bool:
        """Whether a transaction runs on the commit thread (``start``)."""
        return self._flight is not None

    def commit(
        self,
        positions: Positions,
        outbox: Outbox,
        seat: GroupMember,
        in_hand: Mapping[str, float | None],
        check: Callable[[Sequence[Slot]], bool] | None = None,
    ) -> None:
        """Commit the answers in hand that fit, with their partitions' offsets, and what the
        middleware publishes with them (``in_hand``: the jobs still held, by key, with when
        their attempt was sent to a worker; ``Middleware.commit_records``). ``check``, given
        the answers, may withdraw the commit (``Outbox.commit``); they are kept."""
        batch = self._prepare(positions, seat, in_hand, check)
        if batch is None:
            return
        try:
            outbox.commit(batch.group, batch.plan.offsets, batch.records, batch.alone, batch.last)
        except BaseException as exc:  # as ``finish`` takes it from the commit thread
            self._settle(batch, exc)
        else:
            self._settle(batch, None)

    def start(
        self,
        positions: Positions,
        outbox: Outbox,
        seat: GroupMember,
        in_hand: Mapping[str, float | None],
        check: Callable[[Sequence[Slot]], bool] | None,
        thread: CommitThread,
        ended: Callable[[], None],
    ) -> None:
        """``commit``, on ``thread``: ``ended`` is called there when the transaction ends,
        and ``finish`` applies its outcome. None may start while one is in flight."""
        assert self._flight is None, "one transaction at a time, in order"
        batch = self._prepare(positions, seat, in_hand, check)
        if batch is None:
            return
        sent = thread.submit(
            outbox.commit, batch.group, batch.plan.offsets, batch.records, batch.alone, batch.last
        )
        self._flight = (batch, sent)
        sent.add_done_callback(lambda _: ended())

    def finish(self, timeout: float | None = 0.0) -> bool:
        """Apply the outcome of the transaction in flight once it has ended, waiting up to
        ``timeout`` seconds (``None``: until it ends); whether none is in flight now. A
        failure other than the outbox's own (a bug) is raised here, on the consume thread."""
        if self._flight is None:
            return True
        batch, sent = self._flight
        try:
            error = sent.exception(timeout)
        except FutureTimeout:
            return False
        self._flight = None
        self._settle(batch, error)
        return True

    def _prepare(
        self,
        positions: Positions,
        seat: GroupMember,
        in_hand: Mapping[str, float | None],
        check: Callable[[Sequence[Slot]], bool] | None,
    ) -> _Batch | None:
        """The next transaction: every answer that fits, and the middleware's records."""
        plan = positions.plan()
        # Carried only for jobs still held: one let go since may have been answered by its
        # new owner, and a running after that would stay for good.
        carried = [r for r in self._carry if (r.key or b"").decode(errors="replace") in in_hand]
        extra, self._carry = [*carried, *self._hooks.commit_records(in_hand)], []
        if not plan.answers and not extra:
            # None fits yet (a crowded map), or the records due were let go: wait a window,
            # do not spin.
            self._answers_since = time.monotonic()
            self._after = self._answers_since + self._window
            return None
        slots = [self.answers[key] for key in plan.answers]
        records = [*extra, *(record for slot in slots for record in slot.records)]
        by_index = owners(extra, slots)
        alone = {i for i, (s, _) in enumerate(by_index) if id(s) in self._suspects}
        last = None if check is None else (lambda: check(slots))
        group = seat.group_metadata() if plan.offsets else None
        sent = {id(slot): slot.records for slot in slots}
        return _Batch(
            positions, plan, slots, extra, records, alone, last, group, seat, by_index, sent
        )

    def _settle(self, batch: _Batch, error: BaseException | None) -> None:
        """Apply a transaction's outcome: ``error`` as ``Outbox.commit`` raised it."""
        if isinstance(error, Withdrawn):  # kept, and committed in a next step
            self._carry = batch.extra
            self.withdrawn += 1
            self._after = time.monotonic() + WITHDRAWN_PAUSE_SECONDS
        elif isinstance(error, PartitionLost):
            # Kept: the next poll completes the rebalance; what is still ours commits then.
            _log.warning("block %s: commit fenced (%s); trying again", self._block, error)
            batch.seat.fenced()
            # The middleware's records are not kept: a job let go in the rebalance must not
            # show running after its new owner answered it (one still held just shows
            # pending until its answer).
            self._after = time.monotonic() + FENCED_PAUSE_SECONDS
        elif isinstance(error, RecordsRefused):
            self._refused(error, batch)
        elif error is not None:
            raise error
        else:
            self._committed(batch)

    def _committed(self, batch: _Batch) -> None:
        self._suspects.clear()
        batch.positions.committed(batch.plan)
        if not batch.plan.answers:  # only middleware records: the answers' window is unchanged
            return
        for key, slot in zip(batch.plan.answers, batch.slots, strict=True):
            if self.answers.get(key) is slot:  # else let go while in flight (an orphan now)
                del self.answers[key]
        # The oldest answer left: those ready during this transaction have waited already,
        # and go in the next one at once (not a window after this one ended).
        left = self.answers.values()
        self._answers_since = min((s.answered_at for s in left), default=0.0)
        self._due = min((s.answered_at + self._may_wait(s) for s in left), default=0.0)
        self.processed += len(batch.slots)
        for slot in batch.slots:
            if slot.completion is not None:
                self._hooks.after_completion(slot.completion)

    def _refused(self, refusal: RecordsRefused, batch: _Batch) -> None:
        """Kafka refused some records for good. A record refused in a batch may be innocent
        (a broker refuses the whole batch): its job becomes a suspect, whose records are sent
        alone next time. A job's record refused alone loses from its answer what was refused
        (``refusals.smaller``). The middleware's records not refused go in the next commit; those
        refused are dropped. Each try either changes an answer or adds suspects: it ends."""
        self._carry = [r for i, r in enumerate(batch.extra) if i not in refusal.refused]
        refused_by_slot: dict[int, tuple[Slot, dict[int, str]]] = {}
        for index, why in refusal.refused.items():
            owner, at = batch.owners[index]
            if owner is not None and owner.records is not batch.sent[id(owner)]:
                continue  # answered anew meanwhile: its next transaction sends what it is now
            if owner is None:
                _log.warning("block %s: Kafka refused a middleware record: %s", self._block, why)
            elif index in refusal.alone:
                _log.warning("block %s: Kafka refused a record of %s: %s", self._block,
                             owner.key, why)  # fmt: skip
                refused_by_slot.setdefault(id(owner), (owner, {}))[1][at] = why
            else:
                self._suspects.add(id(owner))
        if not all(smaller(slot, whys) for slot, whys in refused_by_slot.values()):
            _log.error("block %s: Kafka refused answers made small; is a topic's "
                       "max.message.bytes too low?", self._block)  # fmt: skip
            self._after = time.monotonic() + REFUSED_PAUSE_SECONDS
