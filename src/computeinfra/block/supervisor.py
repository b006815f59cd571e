"""The supervisor: consumes ``pendingJobs``, validates, drives its worker, publishes answers.

Every record gets exactly one answer: its completion (or dead letter, or forward to another
topic) and its consumed offset are committed in one Kafka transaction (``transaction.py``). The
hot path shares that cost: records are taken in batches, a few attempts are kept queued at
the worker (``pipeline.py``), and the answers ready within ``commit_window`` share one
transaction. Answers commit strictly in consumed order, so a committed offset never passes
a record that has no committed answer.

Partitions change hands only between batches: the supervisor does not poll while jobs run,
and it commits every answer before it polls again. The poll interval the group allows is
sized to the longest run between polls (see ``membership.py``). Each supervisor is a static
group member, so a restarted one takes its partitions straight back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Any

from confluent_kafka import Message

from computeinfra.config import Settings
from computeinfra.protocol import PENDING_TOPIC, BlockState
from computeinfra.tasks.registry import TaskRegistry, load_registry

from .answers import complete
from .batching import MAX_JOBS_PER_CALL, BatchPlanner
from .jobs import Failure, Outcome, judge
from .membership import (
    BATCH_SECONDS,
    ConsumerDead,
    GroupMember,
)
from .middleware import HookError, Middleware, MiddlewareChain
from .pipeline import AttemptQueue
from .positions import ReadPositions
from .slots import Slot, SlotMaker
from .transaction import AnswerBatch, Outbox, PartitionLost
from .worker import WorkerPort
from .worker_link import WorkerLink

__all__ = ["Supervisor"]

_log = logging.getLogger("computeinfra.supervisor")
STATUS_WORKER_TIMEOUT_SECONDS = 5.0
# Pause before a dead consume thread starts again (so a fault that repeats does not spin).
RESTART_PAUSE_SECONDS = 1.0
# How long a starting consume thread waits for its worker to answer: a first start waits
# for the worker's process to come up; a restart must be consuming again within seconds.
WORKER_FIRST_SECONDS = 60.0
WORKER_ASK_ON_RESTART_SECONDS = 5.0
MAX_ANSWERS_PER_TRANSACTION = 1000


class _Fenced(Exception):
    """The group moved on; the batch in hand must be read again."""


class Supervisor:
    """One per working block. ``start()`` runs the consume loop on a background thread."""

    def __init__(
        self,
        settings: Settings,
        block: int,
        worker: WorkerPort,
        middleware: Sequence[Middleware] = (),
        *,
        node: str | None = None,
        member_id: str | None = None,
        group_instance_id: str | None = None,
        registry: TaskRegistry | None = None,
        topics: Sequence[str] = (PENDING_TOPIC,),
    ) -> None:
        self.settings = settings
        self.block = block
        self.node = node
        self.member_id = member_id or f"{settings.namespace}-supervisor-{block}"
        # Its static seat in the group; ``member_id`` stays the stable ``transactional.id``.
        self.group_instance_id = group_instance_id or self.member_id
        self.worker = worker
        self.hooks = MiddlewareChain(middleware)
        self.registry = registry or load_registry(settings.task_modules)
        self.topics = tuple(topics)
        self._slots = SlotMaker(settings, self.registry, self.hooks, block, node)
        self._planner = BatchPlanner(settings.quick_job_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._member: GroupMember | None = None
        self._outbox: Outbox | None = None
        self._answers = AnswerBatch()
        self._positions = ReadPositions()
        self.state: BlockState = BlockState.STARTING
        self.job: str | None = None
        self.processed = 0
        self._attempts_made = 0  # of the job being finished, for a hook that fails on it
        self._link = WorkerLink(worker, block, self._stop)
        self.error: str | None = None  # why the consume thread last died
        self.restarts = 0  # times the consume thread died and started again

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"supervisor-{self.block}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the jobs in hand, commit their answers, leave the group, and return."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        # Asked afresh: Ray may have restarted an idle worker without this supervisor noticing.
        self._link.refresh(STATUS_WORKER_TIMEOUT_SECONDS)
        # Read once: the consume thread may replace them (set them to None) meanwhile.
        member, outbox = self._member, self._outbox
        assigned = member.assigned if member else set()
        return {
            "block": self.block,
            "node": self.node,
            "worker_pid": self.worker_pid,
            "state": self.state,
            "job": self.job,
            "partitions": sorted(p for t, p in assigned if t == PENDING_TOPIC),
            "lanes": sorted(f"{t}:{p}" for t, p in assigned if t != PENDING_TOPIC),
            "processed": self.processed,
            "transactions": outbox.transactions if outbox else 0,
            "group_instance_id": self.group_instance_id,
            "restarts": self.restarts,
            "error": self.error,
            "hook_errors": self.hooks.errors,
        }

    def _run(self) -> None:
        """The consume thread. Whatever ends a round of it (a bug, a broker away for longer
        than a client survives), the block says so and starts again with new clients, reading
        from the committed offsets: it never stops consuming while its actor lives."""
        while not self._stop.is_set():
            try:
                self._serve()
            except BaseException as exc:  # any end of a round, SystemExit from a hook included
                self._died(exc)
        self._shut_down()

    def _serve(self) -> None:
        # A first start waits for the worker's process; a restart does not wait long.
        self._link.refresh(WORKER_ASK_ON_RESTART_SECONDS if self.restarts else WORKER_FIRST_SECONDS)
        self._link.send_to_current()
        self._outbox = Outbox(self.settings.bootstrap_servers, self.member_id)
        self._member = GroupMember(self.settings, self.group_instance_id, self.topics)
        self.state = BlockState.IDLE
        while not self._stop.is_set():
            try:
                self._loop(self._member)
            except ConsumerDead as dead:
                # No answer is held across a poll, so nothing is lost: the new consumer
                # reads from the committed offsets.
                self._member.rejoin(dead)
                self._answers, self._positions = AnswerBatch(), ReadPositions()

    def _died(self, exc: BaseException) -> None:
        """The consume thread's round ended by ``exc``: report it, drop what is uncommitted
        (it is read again), and pause before the next round."""
        self.state, self.job = BlockState.DEAD, None
        self.error = f"{type(exc).__name__}: {exc}"
        self.restarts += 1
        _log.error(
            "block %s: consume thread died, restarting it: %s", self.block, exc, exc_info=exc
        )
        self._close_clients()
        self._answers, self._positions = AnswerBatch(), ReadPositions()
        self._stop.wait(RESTART_PAUSE_SECONDS)

    def _shut_down(self) -> None:
        self.state = BlockState.STOPPING
        if self._member is not None and self._outbox is not None:
            try:
                self._commit()
            except Exception as exc:  # _Fenced or the broker away: the records are read again
                _log.warning("block %s: last commit on stop failed: %s", self.block, exc)
        self._close_clients()
        self.state = BlockState.STOPPED

    def _close_clients(self) -> None:
        member, outbox, self._member, self._outbox = self._member, self._outbox, None, None
        for client in (member, outbox):
            if client is not None:
                try:
                    client.close()
                except Exception as exc:  # a client in a bad state must not block the rest
                    _log.warning("block %s: closing %s: %s", self.block, type(client), exc)

    def _loop(self, member: GroupMember) -> None:
        while not self._stop.is_set():
            records = member.records(self.settings.consume_batch, self.settings.poll_seconds)
            records = self._positions.admit(records, member.epochs, member.consumer)
            try:
                if records:
                    self._process(records)
                    # Before the next poll, which may rebalance: no answer is held across it.
                    self._commit()
                else:
                    self.hooks.on_idle()
            except _Fenced:
                self._rewind()
            finally:
                self.state, self.job = BlockState.IDLE, None

    # -- a batch of records --------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        slots = [self._slots.make(message) for message in messages]
        queue = AttemptQueue(self.worker, on_worker_lost=self._wait_for_worker)
        try:
            finished = self._run_slots(slots, queue)
        except _Fenced:
            queue.drain()  # let the worker finish what it was sent before the next batch
            raise
        if finished < len(slots):
            self._commit()
            self._rewind()  # cut short: the rest is read again after the next poll

    def _run_slots(self, slots: list[Slot], queue: AttemptQueue) -> int:
        """Answer ``slots`` in order; returns how many were answered before a cut."""
        unsent = deque(slot for slot in slots if slot.assignment is not None)
        sent: deque[Slot] = deque()
        deadline = time.monotonic() + BATCH_SECONDS
        for index, slot in enumerate(slots):
            if slot.assignment is not None:
                # Stop sending new jobs on stop, or once the batch ran long (after one job,
                # so that every batch makes progress); the queued ones still finish.
                cut = self._stop.is_set() or (index > 0 and time.monotonic() > deadline)
                while unsent and len(queue) < self.settings.pipeline_depth and not cut:
                    self._send(queue, unsent, sent)
            if slot.assignment is not None:  # still to run (not answered on dispatch)
                if slot.outcome is None and not (sent and sent[0] is slot):
                    return index
                try:
                    self._finish(slot, queue, sent)
                except _Fenced:
                    raise
                except Exception as exc:  # a bug must still answer the job, never skip it
                    _log.exception("block %s: internal error on %s", self.block, self.job)
                    self._slots.answer_error(slot, exc)
            self._answers.add(slot.message, slot.records, slot.completion)
            if len(self._answers) >= MAX_ANSWERS_PER_TRANSACTION:
                self._commit()
        return len(slots)

    def _send(self, queue: AttemptQueue, unsent: deque[Slot], sent: deque[Slot]) -> None:
        """Send the next job, with the quick ones after it that can share its call."""
        upcoming = islice(unsent, MAX_JOBS_PER_CALL)
        tasks = [slot.assignment.task if slot.assignment else "" for slot in upcoming]
        group = [unsent.popleft() for _ in range(self._planner.take(tasks))]
        ready = [slot for slot in group if self._dispatching(slot)]
        if ready:
            queue.send([slot.assignment for slot in ready if slot.assignment is not None])
            sent.extend(ready)

    def _dispatching(self, slot: Slot) -> bool:
        """Run ``before_dispatch``; if a hook raises, the job is answered with that instead
        of being sent."""
        assert slot.assignment is not None
        try:
            self.hooks.before_dispatch(slot.assignment)
        except HookError as error:
            self._slots.answer_hook_error(slot, error, attempts=slot.assignment.attempt - 1)
            return False
        return True

    def _run_to_end(self, slot: Slot, queue: AttemptQueue, sent: deque[Slot]) -> None:
        """Wait for ``slot``'s job to end (retrying as the policy says) and set its answer."""
        assignment = slot.assignment
        assert assignment is not None
        self.state, self.job = BlockState.BUSY, assignment.key
        self._attempts_made = assignment.attempt
        started = time.time()
        result = judge(slot.outcome or self._collect(queue, sent))
        ran = result if isinstance(result, Outcome) else result.outcome
        if ran is not None:  # the task ran to an end: its time says if it is quick
            self._planner.observe(assignment.task, ran)
        while isinstance(result, Failure):
            self.hooks.on_attempt_failed(assignment, result)
            delay = self.hooks.retry_delay(assignment, result)
            if delay is None:
                result = result.final_outcome(started)
                break
            for later, attempt in zip(list(sent), queue.drain(), strict=True):
                later.outcome = attempt.result  # collected now, answered in their turn
            sent.clear()
            self._commit()  # nothing ready should wait out a backoff
            self.state = BlockState.RETRY_BACKOFF
            self._stop.wait(delay)  # a stop request cuts the backoff short, not the job
            self.state = BlockState.BUSY
            assignment = assignment.next_attempt()
            self.hooks.before_dispatch(assignment)
            queue.send([assignment])
            self._attempts_made = assignment.attempt
            started = time.time()
            result = judge(queue.collect(self._idle).result)
        assert isinstance(result, Outcome)
        self._slots.answer(slot, complete(assignment, result, block=self.block, node=self.node))

    def _finish(self, slot: Slot, queue: AttemptQueue, sent: deque[Slot]) -> None:
        """Wait for ``slot``'s job to end and set its answer; a hook that raises on the way
        is the job's answer instead."""
        try:
            self._run_to_end(slot, queue, sent)
        except HookError as error:
            self._slots.answer_hook_error(slot, error, attempts=self._attempts_made)

    def _collect(self, queue: AttemptQueue, sent: deque[Slot]) -> Outcome | Failure:
        sent.popleft()
        return queue.collect(self._idle).result

    def _idle(self, deadline: float) -> float:
        """While the worker is busy: commit answers that have waited long enough."""
        due = self._answers.due_in(self.settings.commit_window)
        if due > 0:
            return min(due, deadline - time.monotonic())
        self._commit()
        return deadline - time.monotonic()

    # -- answers -------------------------------------------------------------------------------

    def _commit(self) -> None:
        """Commit the answers in hand in one transaction; ``_Fenced`` if the group moved on."""
        batch, self._answers = self._answers, AnswerBatch()
        if not batch.messages:
            return
        assert self._outbox is not None and self._member is not None
        self.hooks.before_commit()
        try:
            self._outbox.commit(self._member.consumer, batch.messages, batch.records)
        except PartitionLost as lost:
            _log.warning(
                "block %s could not commit %d answer(s), the group moved on (%s); "
                "reading them again",
                self.block,
                len(batch),
                lost,
            )
            raise _Fenced from lost
        self._positions.committed(batch.messages)
        self.processed += len(batch)
        for completion in batch.completions:
            self.hooks.after_completion(completion)

    def _rewind(self) -> None:
        """Read every record without a committed answer again, if its partition is still ours.

        The group may hand the same partition straight back (a broker restart makes every
        member rejoin); without this the consumer's position would already be past it.
        """
        assert self._member is not None
        self._answers = AnswerBatch()
        self._positions.rewind(self._member.consumer, self._member.epochs)

    # -- the worker ----------------------------------------------------------------------------

    def _wait_for_worker(self) -> None:
        """Block until a new worker process answers, and only then send it anything."""
        self.hooks.on_worker_restart()
        self.state = BlockState.RESTARTING_WORKER
        self._link.wait_for_new()
        self.state = BlockState.BUSY

    @property
    def worker_pid(self) -> int | None:
        return self._link.pid
