"""Slots: one per consumed record, holding the record's answer once it is known.

A record is answered at intake (dead letter, rejection, forward to another topic) or after
its job ran (a completion). ``SlotMaker`` turns records into slots and answers them; it owns
every decision that needs no worker, so the supervisor's loop only schedules.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from confluent_kafka import Message

from computeinfra.config import Settings
from computeinfra.errors import RequestError
from computeinfra.protocol import (
    ATTEMPTS_HEADER,
    COMPLETED_TOPIC,
    DEAD_TOPIC,
    HANDOVERS_HEADER,
    CancelRequest,
    Completion,
    FailureKind,
    attempts_made,
    encode_completion,
    handed_over,
    named_task,
)
from computeinfra.protocol import key_text as _key_text
from computeinfra.tasks.registry import TaskRegistry

from .admit import admit
from .answers import (
    MAX_ANSWER_RECORD_BYTES,
    answer_records,
    cancelled,
    failed,
    record_size,
    reject,
    stripped,
    too_large,
)
from .cancels import Cancels
from .jobs import Assignment, Forward
from .middleware import HookError, MiddlewareChain
from .records import OutboxRecord

__all__ = ["Slot", "SlotMaker", "header_pairs", "longest_left", "record_ms"]

_log = logging.getLogger("computeinfra.supervisor")
FORWARDED_BY_HEADER = "computeinfra.forwarded-by"
Headers = Sequence[tuple[str, Any]] | Mapping[str, Any] | None


@dataclass(eq=False)
class Slot:
    """A consumed record; ``records`` is its answer, set once known."""

    message: Message
    assignment: Assignment | None = None  # its next (or running) attempt, until answered
    records: list[OutboxRecord] = field(default_factory=list)
    completion: Completion | None = None
    position: tuple[tuple[str, int], int] | None = None  # (topic, partition), offset
    released: bool = False  # not this block's to run any more: let go, or passed on
    cancel: CancelRequest | None = None  # read while it ran: its lane stops it
    started_at: float | None = None  # when its latest attempt was sent to a worker
    alone: bool = False  # its next attempt goes in a call of its own (``pipeline.py``)
    queued_at: float = 0.0  # monotonic: when its latest attempt was queued for a worker
    answered_at: float = 0.0  # monotonic: when its answer was ready

    @property
    def answered(self) -> bool:
        return bool(self.records)

    @property
    def key(self) -> str:
        return _key_text(self.message.key() or b"")

    @property
    def task(self) -> str:
        return self.assignment.task if self.assignment is not None else ""


class SlotMaker:
    def __init__(
        self,
        settings: Settings,
        registry: TaskRegistry,
        hooks: MiddlewareChain,
        block: int,
        node: str | None,
        cancels: Cancels | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._hooks = hooks
        self._block = block
        self._node = node
        self.cancels = cancels if cancels is not None else Cancels()

    def make(self, message: Message, read_before: bool = False) -> Slot:
        """A slot for ``message``: with an assignment to run, or already answered;
        ``read_before``: another owner of its partition may have read it (``positions.py``)."""
        slot = Slot(message)
        raw_key: bytes | None = message.key()
        if not raw_key:
            with contextlib.suppress(HookError):  # logged and counted; the record is dead
                self._hooks.on_received(None, None)
            slot.records = self._dead_letter(message)
            return slot
        try:
            self._intake(slot, raw_key, read_before)
        except HookError as error:
            self.answer_hook_error(slot, error)
        except Exception as exc:  # a bug must still answer the job, never skip or loop on it
            _log.exception("block %s: internal error on %s", self._block, _key_text(raw_key))
            self.answer_error(slot, exc)
        return slot

    def _intake(self, slot: Slot, raw_key: bytes, read_before: bool) -> None:
        message = slot.message
        _ts_type, ts_ms = message.timestamp()
        record_time = ts_ms / 1000 if ts_ms and ts_ms > 0 else None
        request, verdict = admit(
            raw_key, message.value(), record_time, self._registry, self._settings
        )
        headers = message.headers()
        if read_before or handed_over(headers):
            # Whatever its verdict here: another block (with other tasks, say) may have run it.
            self._hooks.on_inherited(_key_text(raw_key))
            if isinstance(verdict, Assignment):
                verdict = _inherited(verdict, headers)
        if isinstance(verdict, Assignment):
            slot.assignment = verdict  # first, so that a hook failing now is answered against it
        # What a rejection answers under, and the analyzer counts (``named_task``).
        task = request.task if request else named_task(message.value())
        try:
            self._hooks.on_received(_key_text(raw_key), task)
        except HookError:
            if slot.assignment is not None:
                raise
            # Logged and counted; an invalid request still gets its rejection below.
        if isinstance(verdict, Assignment):
            if (asked := self.cancels.of(verdict)) is not None:
                self.cancel(slot, asked)
                return
            decision = self._hooks.placement(verdict)
            if decision is None:
                return
            slot.assignment = None
            if isinstance(decision, Forward):
                slot.records = [self._forward(message, decision, verdict.inherited)]
                return
            verdict = decision
        submitted = (request.submitted_at if request else None) or record_time
        completion = reject(
            _key_text(raw_key),
            verdict,
            task=task,
            result_dir=request.result_dir if request else None,
            submitted_at=submitted,
            block=self._block,
            node=self._node,
        )
        self.answer(slot, completion)

    def cancel(self, slot: Slot, asked: CancelRequest) -> None:
        """Answer ``slot``'s job ``cancelled``: it waits for a worker or a retry (its
        attempts so far are counted), or has just been read."""
        assignment = slot.assignment
        assert assignment is not None, "only a job still to run is cancelled"
        attempts = assignment.attempt - 1
        self.answer(slot, cancelled(assignment, asked, attempts=attempts,
                                    block=self._block, node=self._node))  # fmt: skip

    def take_up(self, orphan: Slot, message: Message, read_before: bool) -> Slot:
        """``orphan``, a job this block let go, for its record read again: if another owner
        may have read it meanwhile, the middleware is told, and an answer it has already is
        made again (with what the middleware adds for a job inherited)."""
        orphan.message = message
        if orphan.assignment is not None and (asked := self.cancels.of(orphan.assignment)):
            orphan.cancel = asked  # cancelled while let go: stopped and answered as such
        if message.key() and (read_before or handed_over(message.headers())):
            self._hooks.on_inherited(orphan.key)
            if orphan.completion is not None:
                self.answer(orphan, orphan.completion)
            else:  # a forward (or handover): its reader must know a running may be out
                orphan.records = [_marked_inherited(r) for r in orphan.records]
        return orphan

    def answer(self, slot: Slot, completion: Completion) -> None:
        """Set ``slot``'s answer: its completion plus what middleware adds to it. If a
        middleware fails to add its records, the answer is that failure instead."""
        key, value = slot.message.key(), slot.message.value()
        try:
            records = answer_records(key, completion, value, self._hooks)
        except HookError as error:
            if slot.assignment is not None:  # a job, not a rejection: it fails with the hook
                completion = self._hook_failure(slot.assignment, error, completion.attempts)
            records = self._records_despite_hooks(key, completion, value)
        if (size := record_size(records[0])) > MAX_ANSWER_RECORD_BYTES:
            completion = too_large(completion, size)
            records = self._records_despite_hooks(key, completion, value)
        slot.records = [records[0], *self._fitting(records[1:])]
        slot.completion = completion
        slot.assignment = None

    def _fitting(self, extras: list[OutboxRecord]) -> list[OutboxRecord]:
        """The records middleware added, less any too large for Kafka (logged)."""
        fitting = [r for r in extras if record_size(r) <= MAX_ANSWER_RECORD_BYTES]
        for record in extras:
            if record not in fitting:
                _log.warning("block %s: dropping a %d-byte %s record", self._block,
                             record_size(record), record.topic)  # fmt: skip
        return fitting

    def _records_despite_hooks(
        self, key: bytes | None, completion: Completion, value: bytes | None
    ) -> list[OutboxRecord]:
        """The answer's records: the completion, then those of every middleware that does
        not fail (its terminal status and dead letter are kept when a user's hook fails)."""
        record = OutboxRecord(COMPLETED_TOPIC, key, encode_completion(completion))
        return [record, *self._hooks.extra_records_despite(completion, value)]

    def answer_hook_error(self, slot: Slot, error: HookError, attempts: int = 0) -> None:
        """A hook raised while ``slot``'s job was handled: the job fails with it."""
        assert slot.assignment is not None, "only a job's hooks raise HookError"
        self.answer(slot, self._hook_failure(slot.assignment, error, attempts))

    def _hook_failure(self, assignment: Assignment, error: HookError, attempts: int) -> Completion:
        return failed(
            assignment,
            FailureKind.MIDDLEWARE,
            str(error),
            attempts=attempts,
            block=self._block,
            node=self._node,
        )

    def answer_error(self, slot: Slot, exc: Exception) -> None:
        """Answer with a rejection that names an internal error (a bug, never the user's)."""
        assignment = slot.assignment
        completion = reject(
            _key_text(slot.message.key() or b""),
            RequestError(f"internal error: {exc!r}"),
            # As the analyzer counted the request (``named_task``), whatever went wrong.
            task=assignment.task if assignment else named_task(slot.message.value()),
            result_dir=assignment.result_dir if assignment else None,
            submitted_at=assignment.submitted_at if assignment else None,
            block=self._block,
            node=self._node,
        )
        self.answer(slot, completion)

    def _forward(self, message: Message, forward: Forward, inherited: bool) -> OutboxRecord:
        """``message`` for ``forward.topic``, its headers kept (the attempts a job made, its
        handovers). An inherited job is marked handed over, so its reader there knows that
        a ``running`` may be on the topic for it."""
        _log.debug("block %s forwards to %s: %s", self._block, forward.topic, forward.reason)
        headers = [h for h in header_pairs(message) if h[0] != FORWARDED_BY_HEADER]
        if not handed_over(headers):  # attempts count only on a record a block passed on
            headers = [h for h in headers if h[0] != ATTEMPTS_HEADER]
        headers.append((FORWARDED_BY_HEADER, f"block-{self._block}: {forward.reason}".encode()))
        record = OutboxRecord(
            forward.topic, message.key(), message.value() or b"", headers,
            timestamp_ms=record_ms(message),
        )  # fmt: skip
        return _marked_inherited(record) if inherited else record

    def _dead_letter(self, message: Message) -> list[OutboxRecord]:
        reason = "the record has no key; every job needs a key to answer to"
        source = f"{message.topic()}/{message.partition()}/{message.offset()}"
        _log.warning("block %s dead-letters %s: %s", self._block, source, reason)
        headers = [
            ("computeinfra.reason", reason.encode()),
            ("computeinfra.source", source.encode()),
        ]
        record = OutboxRecord(DEAD_TOPIC, message.key(), message.value() or b"", headers)
        if (size := record_size(record)) > MAX_ANSWER_RECORD_BYTES:
            # A client allowed a larger record than a block's producer sends: copying it as
            # it is would fail its transaction again and again.
            record = stripped(record, f"{size} bytes, over {MAX_ANSWER_RECORD_BYTES}")
        return [record]


def _inherited(assignment: Assignment, headers: Headers) -> Assignment:
    """``assignment`` of a record another owner may have read, or a block passed on: one
    a stopping block passed on counts on from the attempts it made there, and always has
    one left (a block that stopped is not the job's failure)."""
    made = attempts_made(headers) if handed_over(headers) else 0  # deadJobs copies carry it
    attempt = min(made + 1, assignment.max_attempts)
    return replace(assignment, inherited=True, attempt=attempt)


def _marked_inherited(record: OutboxRecord) -> OutboxRecord:
    """``record`` (a job's request, forwarded) marked handed over if it is not yet, so that
    its reader treats the job as inherited (``0``: no handover counted)."""
    if handed_over(record.headers):
        return record
    return replace(record, headers=[*record.headers, (HANDOVERS_HEADER, b"0")])


def record_ms(message: Message) -> int:
    """``message``'s time in ms, or 0 (none: a record passed on then gets its own)."""
    _kind, ms = message.timestamp()
    return ms if ms and ms > 0 else 0


def header_pairs(message: Message) -> list[tuple[str, bytes]]:
    """``message``'s headers as (name, bytes) pairs."""
    found: list[tuple[str, bytes]] = []
    for header in message.headers() or []:
        name, value = header[0], header[1]
        found.append((name, value.encode() if isinstance(value, str) else value or b""))
    return found


def longest_left(slots: Iterable[Slot]) -> float:
    """The longest time one of ``slots`` may still run under its time limit."""
    now, longest = time.time(), 0.0
    for slot in slots:
        if slot.started_at is not None and slot.assignment is not None:
            limit = slot.assignment.time_limit
            left = math.inf if limit is None else slot.started_at + limit - now
            longest = max(longest, left)
    return longest
