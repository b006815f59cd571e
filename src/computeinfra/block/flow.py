"""One step of a block's consume thread: poll, take, collect results, retry, commit.

The thread never waits on a job. It polls ``pendingJobs`` (briefly while jobs run), takes
the records it may (``positions.py``), answers at once those that need no worker, queues the
others for its lanes, turns each attempt's result into an answer or a retry (after a
backoff, without holding anything else back), and commits what is answered when a
transaction is due (``commits.py``).

Jobs whose partition moved, or whose consume round ended, are *let go*: kept for a while
as orphans, so that if their record comes back to this block the running job is taken up
again (not run a second time); else they are dropped and the new owner runs them.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable

from confluent_kafka import Message

from computeinfra.config import Settings

from .attempts import Attempts, Verdict
from .backlog import Backlog, JobQueue
from .cancelling import Cancelling
from .commit_thread import CommitThread
from .commits import Commits
from .handover import Handover
from .lanes import LaneEvent
from .membership import GroupMember
from .middleware import MiddlewareChain
from .orphans import Key, Orphans
from .pipeline import Result
from .positions import Positions, where_of
from .retries import Retries
from .slots import Slot, SlotMaker, longest_left
from .transaction import Outbox

__all__ = ["Flow"]

_log = logging.getLogger("computeinfra.supervisor")
# While jobs run, how long to wait for a result before polling again: short while workers
# could take more, so new records start soon; longer while jobs queue anyway.
TICK_SECONDS = 0.005
BUSY_TICK_SECONDS = 0.05
# How long a draining block tries to commit what it answered before it stops.
DRAIN_COMMIT_SECONDS = 5.0


class Flow:
    def __init__(
        self,
        settings: Settings,
        slots: SlotMaker,
        hooks: MiddlewareChain,
        jobs: JobQueue,
        events: queue.SimpleQueue[LaneEvent],
        block: int,
        node: str | None,
        handover: Handover,
        workers: int = 1,
        next_answer: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._handover = handover
        self._slots = slots
        self._hooks = hooks
        self._jobs = jobs
        self._events = events
        self._block, self._node = block, node
        self._member: GroupMember | None = None
        self._outbox: Outbox | None = None
        self._positions = Positions()
        self._pending: dict[Key, Slot] = {}  # taken, not answered
        # When (monotonic) the lanes expect the next answer (``WorkerLane.next_answer``).
        self._next_answer = next_answer
        self._commits = Commits(hooks, settings.commit_window, block, settings.commit_window_max)
        # Transactions run there, one at a time, while this thread goes on (``commits.py``).
        self._commit_thread = CommitThread(f"block-{block}-commit")
        self._answers = self._commits.answers  # answered, not committed
        self._retries = Retries()
        self._cancelling = Cancelling(settings, slots, jobs, self._retries, block, node)
        self._orphans = Orphans()
        self._backlog = Backlog(jobs, settings.consume_batch, workers)
        self._attempts = Attempts(slots, hooks, jobs, self._cancelling, self._retries, block,
                                  node)  # fmt: skip
        self.draining = False
        self.drain_seconds: float | None = None  # None: the longest remaining time limit

    @property
    def processed(self) -> int:
        return self._commits.processed

    @property
    def withheld(self) -> tuple[int, int]:
        """Commits withdrawn by the cancel check, and commits made without it (a broken
        cancelJobs, ``cancelling.UNSETTLED_SECONDS``)."""
        return self._commits.withdrawn, self._cancelling.unchecked

    @property
    def backing_off(self) -> bool:
        return bool(self._retries)

    def begin(self, member: GroupMember, outbox: Outbox, positions: Positions) -> None:
        self._member, self._outbox, self._positions = member, outbox, positions

    # -- one step ------------------------------------------------------------------------------

    def step(self, take: bool = True) -> None:
        member = self._member
        assert member is not None
        busy = bool(self._pending or self._answers or self._retries or self._commits.in_flight)
        wait = 0 if busy else self._settings.poll_seconds
        records = member.records(self._settings.consume_batch, wait)
        self._follow(member)
        if records and take:
            self._take(records)
        self._collect(0.0 if records or not busy else self._tick())
        self._cancelling.in_hand(self._pending, self._answered)
        for slot in self._retries.due():
            self._dispatch(slot)
        self._hand_over(member)
        for slot in self._orphans.expired():
            self._release(slot)
        self._pause(member)
        self._commits.finish()
        if self._commits.due(self._soon()):
            self.commit(wait=False)
        if not (self._pending or self._answers):
            self._hooks.on_idle()

    def _tick(self) -> float:
        tick = TICK_SECONDS if not len(self._jobs) else BUSY_TICK_SECONDS
        commit = self._commits.wait(self._soon())
        if commit is not None:
            tick = min(tick, commit)
        retry = self._retries.wait()
        if retry is not None:
            tick = min(tick, retry)
        return tick

    def _soon(self) -> float | None:
        """When the next answer is expected (``commits.py``): the lanes' estimate; with no
        call running, now if a job is queued for a worker (it is sent at once), else none
        (jobs waiting out a retry's backoff are not worth waiting for)."""
        if not (self._pending and self._answers):
            return None
        expected = self._next_answer()
        if expected is None and len(self._jobs):
            return time.monotonic()
        return expected

    # -- intake --------------------------------------------------------------------------------

    def _take(self, records: list[Message]) -> None:
        member = self._member
        assert member is not None
        ready: list[Slot] = []
        admitted = self._positions.admit(records, member.epochs, member.consumer, member.ends)
        for message in admitted:
            key: Key = (where_of(message), message.offset() or 0)
            read_before = self._positions.inherited(*key)
            orphan = self._orphans.adopt(key)
            if orphan is not None:  # its job is still in hand: take it up again
                slot = self._slots.take_up(orphan, message, read_before)
            else:
                slot = self._slots.make(message, read_before)
                slot.position = key
            self._pending[key] = slot
            if slot.answered:
                self._answered(slot)
            elif orphan is None and self._dispatching(slot):
                ready.append(slot)
        self._queue(ready)

    def _dispatch(self, slot: Slot) -> None:
        """Queue ``slot``'s next attempt for a worker; a hook that raises answers it."""
        if self._dispatching(slot):
            self._queue([slot])

    def _dispatching(self, slot: Slot) -> bool:
        """Whether ``slot``'s next attempt may go to a worker; if not, it is answered."""
        if self._attempts.may_start(slot):
            return True
        self._answered(slot)
        return False

    def _queue(self, slots: list[Slot]) -> None:
        if slots:
            self._jobs.put(slots)

    def _hand_over(self, member: GroupMember) -> None:
        """Forward the jobs this block's held workers cannot start soon to another block
        (``handover.py``); each is answered by its forward, committed as usual."""
        if self.draining:
            return
        for slot in self._handover.take(self._jobs, member.consumer, member.assigned):
            self._answered(slot)

    # -- results -------------------------------------------------------------------------------

    def _collect(self, timeout: float) -> None:
        try:
            event = self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
        except queue.Empty:
            return
        while True:
            self._on_event(event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return

    def _on_event(self, event: LaneEvent) -> None:
        slot = event.slot
        if event.restarting:
            self._hooks.on_worker_restart()
        elif slot is None or slot.released:
            return
        elif event.result is not None:
            self._on_result(slot, event.result)
        elif event.progress is not None and slot.assignment is not None:
            self._hooks.on_progress(slot.assignment, event.progress, slot.started_at or 0.0)

    def _on_result(self, slot: Slot, result: Result) -> None:
        """Answer ``slot`` with its attempt's result, or schedule its next (``attempts.py``)."""
        verdict = self._attempts.settle(slot, result, self.draining)
        if verdict is Verdict.PASS_ON:
            try:
                self._let_out(slot, sent=True)
                return
            except Exception as exc:  # a bug must still answer the job, never skip it
                _log.exception("block %s: cannot pass %s on", self._block, slot.key)
                self._slots.answer_error(slot, exc)
        if verdict is not Verdict.RETRYING:
            self._answered(slot)

    def _answered(self, slot: Slot) -> None:
        key = slot.position
        if key is None or self._pending.get(key) is not slot:
            return  # let go: an orphan keeps its answer, in case its record comes back
        del self._pending[key]
        if self._positions.answer(*key):
            self._commits.add(key, slot)

    # -- letting go ----------------------------------------------------------------------------

    def _follow(self, member: GroupMember) -> None:
        """Let go of the jobs of partitions revoked or assigned anew since the last step."""
        keep = {w: e for w, e in member.epochs.items() if w in member.assigned}
        closed = self._positions.close(keep)
        if closed:
            self._orphan([k for k in (*self._pending, *self._answers) if k[0] in closed])

    def let_go(self) -> None:
        """Let go of everything in hand (the consume round ends)."""
        self.settle()
        self._orphan([*self._pending, *self._answers])
        self._positions = Positions()

    def _orphan(self, keys: list[Key]) -> None:
        for key in keys:
            slot = self._pending.pop(key, None) or self._answers.pop(key, None)
            if slot is not None:
                self._orphans.add(key, slot)

    def _release(self, slot: Slot) -> None:
        """Drop ``slot`` unanswered: its record is read again by whoever owns it."""
        slot.released = True
        if slot.position is not None and self._pending.get(slot.position) is slot:
            del self._pending[slot.position]

    # -- flow control and commits --------------------------------------------------------------

    def _pause(self, member: GroupMember) -> None:
        """Pause every partition while more is queued than the workers will soon start
        (``backlog.py``), and a partition whose map of answered offsets is getting long."""
        full = self._backlog.full(len(self._retries))
        wanted = set(member.assigned) if full or self.draining else set()
        member.pause_only(wanted | self._positions.crowded())

    def commit(self, wait: bool = True) -> None:
        """Commit the answers in hand that fit (``commits.py``) on the commit thread; with
        ``wait``, until it ends. A job whose cancel was read since it was answered is
        answered ``cancelled`` first."""
        assert self._outbox is not None and self._member is not None
        self._commits.finish(timeout=None)  # the one before ends first: commits keep order
        self._cancelling.answered(self._answers.values())
        in_hand = {slot.key: slot.started_at for slot in self._pending.values()}
        self._commits.start(self._positions, self._outbox, self._member, in_hand,
                            self._cancelling.check, self._commit_thread, self._wake)  # fmt: skip
        if wait:
            self._commits.finish(timeout=None)

    def _wake(self) -> None:
        """On the commit thread, as a transaction ends: the consume thread, waiting for a
        lane's event, takes this for one and applies the outcome at once."""
        self._events.put(LaneEvent(slot=None))

    def settle(self) -> None:
        """Wait for the transaction in flight and apply its outcome: before the clients it
        uses close, or its jobs are let go. A bug in it is logged; what it carried stays
        uncommitted, and is read again."""
        try:
            self._commits.finish(timeout=None)
        except Exception:
            _log.exception("block %s: the transaction in flight failed", self._block)

    def drain(self) -> None:
        """Stop taking records; let running jobs end (for ``drain_seconds``, or the longest
        remaining time limit among them); commit. What did not end runs again elsewhere
        (``_let_out``)."""
        self.draining = True
        for slot in [*self._jobs.clear(), *self._retries.clear()]:
            self._let_out(slot, sent=False)
        wait = (
            self.drain_seconds
            if self.drain_seconds is not None
            else longest_left(self._pending.values())
        )
        until = time.monotonic() + wait
        if self._pending:
            _log.info("block %s: draining %d job(s) for up to %.0f s", self._block,
                      len(self._pending), wait)  # fmt: skip
        while self._pending and time.monotonic() < until:
            self.step(take=False)
        self._collect(0.0)  # results already in are answers, not jobs to pass on
        for slot in self._jobs.clear():  # put back by a lane meanwhile: waiting, not running
            self._let_out(slot, sent=False)
        for slot in list(self._pending.values()):  # a lane may have put one back since
            self._let_out(slot, sent=slot.started_at is not None)
        # Until all is committed: a commit may be withdrawn (a cancel just read) or leave
        # answers for the next (a crowded offset map).
        until = time.monotonic() + DRAIN_COMMIT_SECONDS
        self.commit()
        while self._answers and time.monotonic() < until:
            time.sleep(max(self._commits.wait(None) or 0.0, TICK_SECONDS))  # pacing
            self.commit()

    def _let_out(self, slot: Slot, sent: bool) -> None:
        """A stopping block's job that will not end here (``sent``: its current attempt went
        to a worker). One that made attempts is passed on with their count, so the next
        one counts on; one that made none is let go unanswered, for its partition's next
        owner."""
        assignment, member = slot.assignment, self._member
        made = 0 if assignment is None else assignment.attempt - (0 if sent else 1)
        held = slot.position is not None and self._pending.get(slot.position) is slot
        if made <= 0 or member is None or not held:  # not held: let go, another's to run
            self._release(slot)
            return
        self._handover.pass_on(slot, member.consumer, member.assigned, made)  # released
        self._answered(slot)
