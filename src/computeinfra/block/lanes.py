"""Dispatch: one lane (a thread) per worker process, taking jobs from the block's queue.

A block has one worker or several; each lane takes the next job from the shared queue when
its worker can start it, so a long job holds one worker and no other job waits behind it.
Lanes only move jobs: they send a call, wait for it, and hand each attempt's result to the
supervisor's thread, which decides what happens next (answer, retry), so middleware hooks
always run on that one thread.

A lane keeps more than one call queued at its worker only while what it has sent is known
to be quick (``batching.py``), and about two calls' worth of work at most (under
``SEND_AHEAD_SECONDS`` before the last call went, so up to about 250 ms): a job sent to a
worker can no longer start elsewhere, on a block that runs out of work first
(``handover.share``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice

from computeinfra.protocol import FailureKind, Progress

from .backlog import PIPELINE_SECONDS, JobQueue
from .batching import CALL_BUDGET_SECONDS
from .jobs import Failure, NotRun
from .pipeline import AttemptQueue, Result
from .slots import Slot
from .worker import WorkerPort
from .worker_link import ProgressRelay, WorkerLink

__all__ = ["LaneEvent", "WorkerLane"]

_log = logging.getLogger("computeinfra.supervisor")
# How often a lane with a quick job running looks for more work to queue behind it.
TOP_UP_SECONDS = 0.002
# A lane sends one more call of quick jobs only while those it has sent are expected to take
# less than this: what hides the round trip between two calls is one call waiting behind the
# running one, not the four ``COMPUTEINFRA_PIPELINE_DEPTH`` allows. One call and a half: a
# full call (its jobs' run times have been learnt anew since it went) still has one behind.
SEND_AHEAD_SECONDS = 1.5 * CALL_BUDGET_SECONDS
# A lane with a long job running looks at it this often (for its time limit, or a stop).
LONG_WAIT_SECONDS = 0.5
TAKE_WAIT_SECONDS = 0.2
# How long a worker may take to pass a cancel on to its running job.
ASK_TO_STOP_SECONDS = 1.0


@dataclass(frozen=True)
class LaneEvent:
    """What a lane hands its supervisor: an attempt's result, a running job's progress, or
    that its worker restarts."""

    slot: Slot | None
    result: Result | None = None
    restarting: bool = False
    progress: Progress | None = None  # what the running job said of its progress


class WorkerLane:
    """Feeds one worker from the ``JobQueue``, and reports each attempt's result."""

    def __init__(
        self,
        worker: WorkerPort,
        index: int,
        jobs: JobQueue,
        events: queue.SimpleQueue[LaneEvent],
        block: int,
        stop: threading.Event,
        depth: int,
        grace: float = 0.0,
    ) -> None:
        self.index = index
        self.worker = worker
        self._jobs = jobs
        self._events = events
        self._stop = stop
        self._depth = depth
        self.link = WorkerLink(worker, block, stop)
        self._queue = AttemptQueue(worker, on_worker_lost=self._worker_lost, kill=self._kill)
        self._sent: deque[Slot] = deque()
        self._rescued: Slot | None = None  # the long job whose followers were taken back
        self._grace = grace  # how long a cancelled job may take to stop by itself
        self._cancelled: Slot | None = None  # the cancelled job asked to stop
        self._kill_at = 0.0  # monotonic: when its worker is killed if it has not stopped
        self._killed: Slot | None = None
        self._progress = ProgressRelay(worker)
        self._thread: threading.Thread | None = None
        self._block = block
        self.restarting = False

    @property
    def running(self) -> list[Slot]:
        return list(self._sent)

    def idle_since(self) -> float | None:
        """Since when (monotonic) this lane's worker has had nothing to run; None if busy."""
        return None if self._sent else self._queue.idle_since()

    def next_answer(self) -> float | None:
        """When (monotonic) the call its worker is on should answer, by its task's recent
        run time (untimed: any moment, its start); None if none runs. Read from the
        supervisor's thread (``commits.py``): a race costs one estimate, nothing more."""
        head = self._queue.head_since()
        if head is None:
            return None
        try:
            return head[0] + self._head_work(head[1])
        except RuntimeError:  # ``_sent`` changed meanwhile
            return None

    def held(self, seconds: float) -> bool:
        """Whether this lane's worker has been on its current call for ``seconds``."""
        head = self._queue.head_since()
        return head is not None and time.monotonic() - head[0] >= seconds

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"lane-{self._block}-{self.index}", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # a bug here must not end the lane, nor leave it inconsistent
                _log.exception(
                    "block %s lane %s failed; starting it again with a new worker process",
                    self._block, self.index,
                )  # fmt: skip
                try:
                    self._resync()
                except Exception:
                    _log.exception("block %s lane %s: could not start again", self._block,
                                   self.index)  # fmt: skip
                    self._stop.wait(1.0)

    def _resync(self) -> None:
        """Start clean after a bug in this lane: what it had sent cannot be trusted.

        The worker process is ended and a new one awaited first, so no call sent before
        can still run beside what is sent next. The job it was on gets a failed attempt
        (``InternalError``; the retry policy decides, so a job that trips the bug every
        time ends with one answer instead of looping); the jobs sent after it go back first
        in line, uncounted (one that shared its call may have run already: it runs again,
        and is answered once).
        """
        sent, self._sent = list(self._sent), deque()
        self._queue = AttemptQueue(self.worker, on_worker_lost=self._worker_lost, kill=self._kill)
        self._rescued = None
        if sent:
            self._kill()
            self._worker_lost()
            self._jobs.put_front(sent[1:])
            failure = Failure(FailureKind.INTERNAL,
                              "the block's dispatch failed during this attempt; its worker "
                              "was restarted")  # fmt: skip
            self._events.put(LaneEvent(sent[0], failure))
        self._stop.wait(1.0)  # a bug that recurs must not become a hot loop

    def _step(self) -> None:
        if not self._sent:
            group = self._jobs.take(TAKE_WAIT_SECONDS)
            if not group:
                return
            self._send(group)
        attempt = self._queue.collect(self._top_up)
        assert self._sent[0].assignment is attempt.assignment, "results pair in send order"
        slot = self._sent.popleft()
        if isinstance(attempt.result, NotRun):  # back first in line, uncounted, in order
            back = [slot]
            slot.alone = attempt.result.alone
            while self._sent and self._queue.next_not_run():
                result = self._queue.collect().result
                back.append(self._sent.popleft())
                back[-1].alone = isinstance(result, NotRun) and result.alone
            self._jobs.put_front(back)
            return
        self._events.put(LaneEvent(slot, attempt.result))

    def _send(self, group: list[Slot]) -> None:
        started, assignments = time.time(), []
        for slot in group:
            assert slot.assignment is not None, "only a job still to run is queued"
            slot.started_at = started
            assignments.append(slot.assignment)
        self._sent.extend(group)  # first: a send that raises leaves them to ``_resync``
        self._queue.send(assignments)

    def _top_up(self, deadline: float) -> float:
        """While a call runs: stop the job on it if it was cancelled; queue more quick work
        behind it, if all in hand is quick."""
        if self._stop.is_set():
            return LONG_WAIT_SECONDS
        running = self._running_now()
        if running is not None and running.cancel is not None:
            wait = self._stop_cancelled(running)
            return min(wait, max(deadline - time.monotonic(), 0.0))
        self._pass_progress_on(running)
        overdue = self._head_overdue()
        if overdue and self._rescued is not self._sent[0]:
            self._rescue()
        # Sent enough, or a job that is not quick: nothing to add before a call answers (which
        # ends the wait), so no look every TOP_UP_SECONDS meanwhile.
        if len(self._queue) >= self._depth or overdue or not self._may_send_more():
            return self._long_wait(deadline, overdue)
        group = self._jobs.take_quick()
        if group:
            self._send(group)
        return TOP_UP_SECONDS

    def _may_send_more(self) -> bool:
        """Whether every job sent and not collected is known to be quick (nothing may queue
        behind one that is not), and all of them together take under SEND_AHEAD_SECONDS."""
        total = 0.0
        for slot in self._sent:
            expected = self._jobs.expected(slot.task)
            if expected is None or expected >= PIPELINE_SECONDS:
                return False
            total += expected
        return total < SEND_AHEAD_SECONDS

    def _running_now(self) -> Slot | None:
        """The job the worker is on, when that is known (``AttemptQueue.running_now``)."""
        running = self._queue.running_now()
        if running is None:
            return None
        return next((s for s in self._sent if s.assignment is running), None)

    def _stop_cancelled(self, slot: Slot) -> float:
        """Stop ``slot``, a cancelled job the worker is on: tell it (``ctx.cancelled``; the
        jobs queued behind it go back to the block's queue meanwhile), and kill its worker
        if it is still on it after the grace period, whatever its code does. Returns how
        long to wait before looking again."""
        assignment = slot.assignment
        assert assignment is not None
        now = time.monotonic()
        if self._cancelled is not slot:
            self._cancelled, self._kill_at = slot, now + self._grace
            _log.info("block %s lane %s: stopping %s, cancelled", self._block, self.index,
                      assignment.key)  # fmt: skip
            if self._rescued is not self._sent[0]:
                self._rescue()
            self._ask_to_stop(assignment.key)
        if now < self._kill_at:
            return min(self._kill_at - now, LONG_WAIT_SECONDS)
        # Asked again first: a job that stopped by itself may have let the worker begin the
        # next call, which a kill now would cost an attempt. (A job that had not begun when
        # first asked is told now.)
        if self._killed is not slot and self._ask_to_stop(assignment.key):
            self._killed = slot  # once: the kill takes a moment to land
            self._kill()
        return LONG_WAIT_SECONDS if self._killed is not slot else 0.0

    def _pass_progress_on(self, running: Slot | None) -> None:
        """Hand the supervisor what the job the worker is on said of its progress, if it is
        new (``ProgressRelay``)."""
        head = self._queue.head_since()
        if running is None or running.assignment is None or head is None:
            return
        said = self._progress.news(running.assignment.key, head[0])
        if said is not None:
            self._events.put(LaneEvent(running, progress=said))

    def _ask_to_stop(self, key: str) -> bool:
        """Tell the worker its job ``key`` is cancelled; whether it is on it (unanswered:
        taken as yes, so that a dying worker is still stopped)."""
        try:
            return self.worker.ask_to_stop(key, ASK_TO_STOP_SECONDS)
        except Exception:
            _log.debug("block %s lane %s: no answer to a stop", self._block, self.index)
            return True

    def _rescue(self) -> None:
        """The running job turned out long: take back what waits behind it at the worker
        (in its call, or queued), and put it first in the block's queue for any free worker
        (or handover)."""
        self._rescued = self._sent[0]
        taken = {id(a) for a in self._queue.take_back()}
        if not taken:
            return
        back = [s for s in self._sent if id(s.assignment) in taken]
        self._sent = deque(s for s in self._sent if id(s.assignment) not in taken)
        self._jobs.put_front(back)
        _log.info("block %s lane %s: took back %d job(s) queued behind a long one",
                  self._block, self.index, len(back))  # fmt: skip

    def _long_wait(self, deadline: float, overdue: bool) -> float:
        """How long to wait for the running call's answer before looking again: until its
        deadline, ``LONG_WAIT_SECONDS`` at most, and, while jobs wait behind it at the
        worker, no later than when it turns overdue (``_rescue`` then takes them back)."""
        now = time.monotonic()
        wait = min(LONG_WAIT_SECONDS, max(deadline - now, 0.0))
        at = None if overdue or len(self._sent) < 2 else self._overdue_at()
        return wait if at is None else min(wait, max(at - now, TOP_UP_SECONDS))

    def _head_overdue(self) -> bool:
        """Whether the job running has taken longer than its task's jobs usually do: one
        task's jobs can differ (a 0 s and a 45 s ``sleep``), and nothing may be queued
        behind one that turns out long."""
        at = self._overdue_at()
        return at is not None and time.monotonic() > at

    def _overdue_at(self) -> float | None:
        """When (monotonic) the call the worker is on turns overdue; None if none runs."""
        running = self._queue.head_since()
        if running is None:
            return None
        since, jobs = running
        return since + 2 * self._head_work(jobs) + PIPELINE_SECONDS

    def _head_work(self, jobs: int) -> float:
        """The expected run time of the call the worker is on, its ``jobs`` first jobs sent
        (the tasks of one call may differ); a task not timed yet counts 0."""
        return sum(self._jobs.expected(slot.task) or 0.0 for slot in islice(self._sent, jobs))

    def _kill(self) -> None:
        """Kill the worker process, noting first which process that is: nothing is sent
        until another answers (``WorkerLink.wait_for_new``)."""
        self.link.losing()
        self.worker.kill()

    def _worker_lost(self) -> None:
        """Nothing is sent until a new worker process answers; the supervisor is told."""
        self.restarting = True
        self._events.put(LaneEvent(None, restarting=True))
        try:
            self.link.wait_for_new()
        finally:
            self.restarting = False
