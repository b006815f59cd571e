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

So a 10 ms job shares its transaction with the four or five after it, a no-op job arriving
alone is answered at once, and a job of a second is not held back for the next one (unless
that one runs past its estimate: then for the window at most). A commit the group fenced is
kept and tried again after the rebalance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import Consumer

from computeinfra.errors import RequestError
from computeinfra.protocol import (
    DEAD_TOPIC,
    JOB_STATUS_TOPIC,
    Completion,
    FailureKind,
    encode_job_status,
)

from .answers import completion_record, is_stripped, refused, reject, stripped
from .middleware import MiddlewareChain
from .middleware.status import terminal_status
from .orphans import Key
from .positions import Positions
from .slots import Slot
from .transaction import Outbox, OutboxRecord, PartitionLost, RecordsRefused, Withdrawn

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

    def commit(
        self,
        positions: Positions,
        outbox: Outbox,
        consumer: Consumer,
        in_hand: Mapping[str, float | None],
        check: Callable[[Sequence[Slot]], bool] | None = None,
    ) -> None:
        """Commit the answers in hand that fit, with their partitions' offsets, and what the
        middleware publishes with them (``in_hand``: the jobs still held, by key, with when
        their attempt was sent to a worker; ``Middleware.commit_records``). ``check``, given
        the answers, may withdraw the commit (``Outbox.commit``); they are kept."""
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
            return
        slots = [self.answers[key] for key in plan.answers]
        try:
            records = [*extra, *(record for slot in slots for record in slot.records)]
            alone = (
                {i for i, (s, _) in enumerate(_owners(extra, slots)) if id(s) in self._suspects}
                if self._suspects
                else set()
            )
            last = None if check is None else (lambda: check(slots))
            outbox.commit(consumer, plan.offsets, records, alone, last)
        except Withdrawn:  # kept, and committed in a next step (as changed meanwhile)
            self._carry = extra
            self.withdrawn += 1
            self._after = time.monotonic() + WITHDRAWN_PAUSE_SECONDS
            return
        except PartitionLost as lost:
            # Kept: the next poll completes the rebalance; what is still ours commits then.
            _log.warning("block %s: commit fenced (%s); trying again", self._block, lost)
            # The middleware's records are not kept: a job let go in the rebalance must not
            # show running after its new owner answered it (one still held just shows
            # pending until its answer).
            self._after = time.monotonic() + FENCED_PAUSE_SECONDS
            return
        except RecordsRefused as refusal:
            self._refused(refusal, extra, slots)
            return
        self._suspects.clear()
        positions.committed(plan)
        if not plan.answers:  # only middleware records: the answers' window is unchanged
            return
        for key in plan.answers:
            del self.answers[key]
        # The oldest answer left: those ready during this transaction have waited already,
        # and go in the next one at once (not a window after this one ended).
        left = self.answers.values()
        self._answers_since = min((s.answered_at for s in left), default=0.0)
        self._due = min((s.answered_at + self._may_wait(s) for s in left), default=0.0)
        self.processed += len(slots)
        for slot in slots:
            if slot.completion is not None:
                self._hooks.after_completion(slot.completion)

    def _refused(
        self, refusal: RecordsRefused, extra: list[OutboxRecord], slots: list[Slot]
    ) -> None:
        """Kafka refused some records for good. A record refused in a batch may be innocent
        (a broker refuses the whole batch): its job becomes a suspect, whose records are sent
        alone next time. A job's record refused alone loses from its answer what was refused
        (``_smaller``). The middleware's records not refused go in the next commit; those
        refused are dropped. Each try either changes an answer or adds suspects: it ends."""
        self._carry = [r for i, r in enumerate(extra) if i not in refusal.refused]
        owners = _owners(extra, slots)
        refused_by_slot: dict[int, tuple[Slot, dict[int, str]]] = {}
        for index, why in refusal.refused.items():
            owner, at = owners[index]
            if owner is None:
                _log.warning("block %s: Kafka refused a middleware record: %s", self._block, why)
            elif index in refusal.alone:
                _log.warning("block %s: Kafka refused a record of %s: %s", self._block,
                             owner.key, why)  # fmt: skip
                refused_by_slot.setdefault(id(owner), (owner, {}))[1][at] = why
            else:
                self._suspects.add(id(owner))
        if not all(_smaller(slot, whys) for slot, whys in refused_by_slot.values()):
            _log.error("block %s: Kafka refused answers made small; is a topic's "
                       "max.message.bytes too low?", self._block)  # fmt: skip
            self._after = time.monotonic() + REFUSED_PAUSE_SECONDS


def _owners(extra: list[OutboxRecord], slots: list[Slot]) -> list[tuple[Slot | None, int]]:
    """For each record of a transaction (the middleware's, then each answer's): its job's
    slot (``None`` for the middleware's) and its index in that slot's records."""
    owners: list[tuple[Slot | None, int]] = [(None, i) for i in range(len(extra))]
    return owners + [(slot, i) for slot in slots for i in range(len(slot.records))]


def _answered_anew(slot: Slot, completion: Completion) -> None:
    """``slot``'s answer is ``completion`` now: its record, and its terminal status (a
    ``running`` may be on ``jobStatus`` for it, and must not stay there)."""
    key = slot.message.key()
    status = encode_job_status(terminal_status(completion))
    slot.completion = completion
    slot.records = [completion_record(key, completion), OutboxRecord(JOB_STATUS_TOPIC, key, status)]


def _smaller(slot: Slot, refused_records: dict[int, str]) -> bool:
    """Take out of ``slot``'s answer what Kafka refused (``refused_records``: why, by the
    record's index in ``slot.records``): a record beside a job's completion is dropped; a
    completion refused becomes ``failed`` with ``AnswerRefused``; a dead letter loses its
    value; a request passed on (to a lane, or another block) is answered ``rejected``
    instead. False if the answer cannot get smaller."""
    completion, why = slot.completion, next(iter(refused_records.values()))
    if completion is None and all(r.topic == DEAD_TOPIC for r in slot.records):
        if all(is_stripped(record) for record in slot.records):
            return False
        slot.records = [stripped(record, why) for record in slot.records]
    elif completion is None:
        topic = slot.records[0].topic
        error = RequestError(
            f"the request could not be passed on to {topic}: Kafka refused it ({why})"
        )
        _answered_anew(slot, reject(slot.key, error, task=None, result_dir=None, submitted_at=None))
    elif 0 not in refused_records:  # the completion went through; what came with it did not
        slot.records = [r for i, r in enumerate(slot.records) if i not in refused_records]
    elif completion.error is not None and completion.error.type == FailureKind.ANSWER_REFUSED:
        return False
    else:
        _answered_anew(slot, refused(completion, why))
    return True
