"""The supervisor: consumes ``pendingJobs``, validates, drives its worker, publishes answers.

Every record gets exactly one answer: its completion (or dead letter, or forward to another
topic) and its consumed offset are committed in one Kafka transaction (``outbox.py``). The
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

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Any

from confluent_kafka import Message

from computeinfra.config import Settings
from computeinfra.protocol import PENDING_TOPIC
from computeinfra.tasks.registry import TaskRegistry, load_registry

from .batching import MAX_JOBS_PER_CALL, BatchPlanner
from .jobs import Failure, Outcome, complete, judge
from .membership import (
    BATCH_SECONDS,
    ConsumerDead,
    GroupMember,
)
from .middleware import Middleware, MiddlewareChain
from .pipeline import AttemptQueue
from .positions import ReadPositions
from .slots import Slot, SlotMaker
from .transaction import AnswerBatch, Outbox, PartitionLost
from .worker import WorkerPort

__all__ = ["Supervisor"]

_log = logging.getLogger("computeinfra.supervisor")
WORKER_BACK_TIMEOUT_SECONDS = 120.0
WORKER_ASK_TIMEOUT_SECONDS = 5.0
WORKER_POLL_SECONDS = 0.05
STATUS_WORKER_TIMEOUT_SECONDS = 5.0
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
        registry: TaskRegistry | None = None,
        topics: Sequence[str] = (PENDING_TOPIC,),
    ) -> None:
        self.settings = settings
        self.block = block
        self.node = node
        self.member_id = member_id or f"{settings.namespace}-supervisor-{block}"
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
        self.state = "starting"
        self.job: str | None = None
        self.processed = 0
        self.worker_pid: int | None = None
        # The process jobs are sent to, as this supervisor last confirmed it. Not
        # ``worker_pid``, which status() refreshes from another thread: after a loss it may
        # already name the new process, which must not be mistaken for the lost one.
        self._sending_to: int | None = None

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
        self._refresh_worker_pid(STATUS_WORKER_TIMEOUT_SECONDS)
        assigned = self._member.assigned if self._member else set()
        return {
            "block": self.block,
            "node": self.node,
            "worker_pid": self.worker_pid,
            "state": self.state,
            "job": self.job,
            "partitions": sorted(p for t, p in assigned if t == PENDING_TOPIC),
            "lanes": sorted(f"{t}:{p}" for t, p in assigned if t != PENDING_TOPIC),
            "processed": self.processed,
            "transactions": self._outbox.transactions if self._outbox else 0,
        }

    def _run(self) -> None:
        self._refresh_worker_pid()
        self._sending_to = self.worker_pid
        self._outbox = Outbox(self.settings.bootstrap_servers, self.member_id)
        self._member = GroupMember(self.settings, self.member_id, self.topics)
        self.state = "idle"
        try:
            while not self._stop.is_set():
                try:
                    self._loop(self._member)
                except ConsumerDead as dead:
                    # No answer is held across a poll, so nothing is lost: the new consumer
                    # reads from the committed offsets.
                    self._member.rejoin(dead)
                    self._answers, self._positions = AnswerBatch(), ReadPositions()
        finally:
            self.state = "stopping"
            with contextlib.suppress(_Fenced):
                self._commit()
            self._member.close()
            self._outbox.close()
            self.state = "stopped"

    def _loop(self, member: GroupMember) -> None:
        while not self._stop.is_set():
            records = member.records(self.settings.consume_batch, self.settings.poll_seconds)
            self._positions.consumed(records)
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
                self.state, self.job = "idle", None

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
        assignments = [slot.assignment for slot in group if slot.assignment is not None]
        for assignment in assignments:
            self.hooks.before_dispatch(assignment)
        queue.send(assignments)
        sent.extend(group)

    def _finish(self, slot: Slot, queue: AttemptQueue, sent: deque[Slot]) -> None:
        """Wait for ``slot``'s job to end (retrying as the policy says) and set its answer."""
        assignment = slot.assignment
        assert assignment is not None
        self.state, self.job = "busy", assignment.key
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
            self.state = "retry-backoff"
            self._stop.wait(delay)  # a stop request cuts the backoff short, not the job
            self.state = "busy"
            assignment = assignment.next_attempt()
            self.hooks.before_dispatch(assignment)
            queue.send([assignment])
            started = time.time()
            result = judge(queue.collect(self._idle).result)
        assert isinstance(result, Outcome)
        self._slots.answer(slot, complete(assignment, result, block=self.block, node=self.node))

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
        self._positions.rewind(self._member.consumer)

    # -- the worker ----------------------------------------------------------------------------

    def _wait_for_worker(self) -> None:
        """Block until a new worker process answers, and only then send it anything.

        Ray fails a call to a worker it is still restarting at once (ActorUnavailableError),
        and a call sent right after ``kill`` can still reach the old process and die with
        it; either would spend an attempt of a job that never ran.
        """
        self.hooks.on_worker_restart()
        self.state = "restarting-worker"
        lost_pid, deadline = self._sending_to, time.monotonic() + WORKER_BACK_TIMEOUT_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            pid = self._worker_pid_now(WORKER_ASK_TIMEOUT_SECONDS)
            if pid is not None and pid != lost_pid:
                self.worker_pid = self._sending_to = pid
                break
            self._stop.wait(WORKER_POLL_SECONDS)  # polling a condition with a deadline
        else:
            if not self._stop.is_set():  # sending will surface the failure
                _log.warning(
                    "block %s: no new worker after %.0f s", self.block, WORKER_BACK_TIMEOUT_SECONDS
                )
        self.state = "busy"

    def _worker_pid_now(self, timeout: float) -> int | None:
        """The worker's pid, or None if it did not answer (dead, restarting or busy)."""
        try:
            return int(self.worker.describe(timeout)["pid"])
        except Exception as exc:  # the next submit will surface a real failure
            _log.debug("block %s: worker did not answer: %s", self.block, exc)
            return None

    def _refresh_worker_pid(self, timeout: float = 60.0) -> None:
        self.worker_pid = self._worker_pid_now(timeout)
        if self.worker_pid is None:
            _log.warning("block %s: worker did not answer within %.0f s", self.block, timeout)
