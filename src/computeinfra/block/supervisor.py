"""The supervisor: consumes ``pendingJobs``, validates, hands jobs to its workers, and
publishes each answer with its consumed offset in one transaction.

Its consume thread never waits on a job: it polls, takes records (``positions.py``), puts
their jobs on the queue its worker lanes take from (``lanes.py``), turns each attempt's
result into an answer or a retry (``flow.py``), and commits what is answered
(``transaction.py``). Jobs end in any order; each partition's offset is committed up to its
oldest unanswered record, with the records answered beyond it in the commit's metadata.
When the block has more queued than its workers can soon start, it pauses its partitions,
and goes on polling, so the group never waits on it for a rebalance.

Each supervisor is a static group member, so a restarted one takes its partitions straight
back; the jobs it was running when its consume thread restarted are taken up again when
their records come back (``flow.Flow.take``), not run a second time.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from computeinfra.config import Settings
from computeinfra.kafka.follow import TopicFollower
from computeinfra.protocol import CANCEL_TOPIC, PENDING_TOPIC, BlockState
from computeinfra.tasks.registry import TaskRegistry, load_registry

from .backlog import JobQueue
from .batching import BatchPlanner
from .cancels import Cancels
from .flow import Flow
from .handover import Handover
from .lanes import LaneEvent, WorkerLane
from .membership import ConsumerDead, GroupMember
from .middleware import Middleware, MiddlewareChain
from .peers import PeerBoard, PeerLoad, load_of
from .positions import Positions
from .slots import SlotMaker
from .transaction import Outbox
from .worker import WorkerPort

__all__ = ["Supervisor"]

_log = logging.getLogger("computeinfra.supervisor")
STATUS_WORKER_TIMEOUT_SECONDS = 5.0
# Pause before a dead consume thread starts again (so a fault that repeats does not spin).
RESTART_PAUSE_SECONDS = 1.0
# How long a starting consume thread waits for its workers to answer: a first start waits
# for their processes to come up; a restart must be consuming again within seconds.
WORKER_FIRST_SECONDS = 60.0
WORKER_ASK_ON_RESTART_SECONDS = 5.0
# How often a block still reading cancelJobs before its first record says so.
CANCELS_WAIT_SECONDS = 10.0


class Supervisor:
    """One per working block. ``start()`` runs the consume loop on a background thread."""

    def __init__(
        self,
        settings: Settings,
        block: int,
        workers: Sequence[WorkerPort],
        middleware: Sequence[Middleware] = (),
        *,
        node: str | None = None,
        member_id: str | None = None,
        group_instance_id: str | None = None,
        registry: TaskRegistry | None = None,
        topics: Sequence[str] = (PENDING_TOPIC,),
        peers: Callable[[], list[PeerLoad]] | None = None,
    ) -> None:
        self.settings = settings
        self.block = block
        self.node = node
        self.member_id = member_id or f"{settings.namespace}-supervisor-{block}"
        # Its static seat in the group; ``member_id`` names its stable transactional ids.
        self.group_instance_id = group_instance_id or self.member_id
        self._first_seat = self.group_instance_id
        self.hooks = MiddlewareChain(middleware)
        self.registry = registry or load_registry(settings.task_modules)
        self.topics = tuple(topics)
        self._stop = threading.Event()  # take no more records; drain and stop
        self._reseat = threading.Event()  # rejoin the group with a new seat
        self._seats = 0
        self._seat_changed = False
        self._lanes_stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._member: GroupMember | None = None
        self._outbox: Outbox | None = None
        self._jobs = JobQueue(BatchPlanner(settings.quick_job_seconds))
        self._events: queue.SimpleQueue[LaneEvent] = queue.SimpleQueue()
        lane_settings = (self._lanes_stop, settings.pipeline_depth, settings.cancel_grace)
        self.lanes = [
            WorkerLane(w, i, self._jobs, self._events, block, *lane_settings)
            for i, w in enumerate(workers)
        ]
        self.cancels = Cancels()
        self._cancel_reader = TopicFollower(
            settings.bootstrap_servers,
            [CANCEL_TOPIC],
            self.cancels.on_record,
            client_id=f"{self.member_id}-cancels",
            track_reads=True,  # each commit checks it read them all
        )
        self.cancels.reader = self._cancel_reader
        slots = SlotMaker(settings, self.registry, self.hooks, block, node, self.cancels)
        self._peers = PeerBoard(peers)
        self.handover = Handover(
            settings.handover_seconds, self._all_held, block, workers=len(self.lanes),
            board=self._peers,
        )  # fmt: skip
        self.flow = Flow(
            settings, slots, self.hooks, self._jobs, self._events, block, node, self.handover,
            workers=len(self.lanes), next_answer=self._next_answer,
        )  # fmt: skip
        self.state: BlockState = BlockState.STARTING
        self.error: str | None = None  # why the consume thread last died
        self.restarts = 0  # times the consume thread died and started again

    def _next_answer(self) -> float | None:
        """The soonest any lane expects an answer (``WorkerLane.next_answer``)."""
        expected = (lane.next_answer() for lane in self.lanes)
        return min((when for when in expected if when is not None), default=None)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._cancel_reader.start()
        for lane in self.lanes:
            lane.start()
        self._thread = threading.Thread(target=self._run, name=f"supervisor-{self.block}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, drain: float | None = None) -> None:
        """Take no more records, let running jobs end (for ``drain`` seconds, by default
        ``COMPUTEINFRA_DRAIN_SECONDS`` or else the longest remaining time limit of the jobs
        running), commit their answers, and return. A job still running then is passed on
        with the attempts it made (``Flow.drain``); one that never started is let go, and
        read again by its partition's next owner."""
        self.flow.drain_seconds = drain if drain is not None else self.settings.drain_seconds
        self._stop.set()
        self._peers.stop()
        if self._thread is not None:
            self._thread.join()
        self._lanes_stop.set()

    def load(self) -> PeerLoad:
        """What this block can take on now, for a peer sharing its queue (``peers.py``):
        its idle workers, while it takes records and none wait here (queued or paused)."""
        member = self._member  # read once: the consume thread may replace it
        taking = (
            self.state in (BlockState.IDLE, BlockState.BUSY)
            and not self._stop.is_set()
            and member is not None
            and not len(self._jobs)
            and not member.paused
        )
        try:
            owned = frozenset(member.assigned) if member else frozenset()
        except RuntimeError:  # a rebalance changed it meanwhile: asked again in a moment
            owned = frozenset()
        return load_of(self.member_id, taking, [lane.idle_since() for lane in self.lanes], owned)

    def reseat(self) -> None:
        """Leave the group's seat and join with a new one, which the group must give a full
        assignment: the way out of a group whose stored assignment leaves partitions to no
        one (a cooperative rebalance cut in half; ``cluster/keeper.py`` asks for it). What
        is not committed is let go and read again, as after a rebalance."""
        self._reseat.set()

    def status(self) -> dict[str, Any]:
        # Asked afresh: Ray may have restarted an idle worker without this supervisor noticing.
        for lane in self.lanes:
            lane.link.refresh(STATUS_WORKER_TIMEOUT_SECONDS)
        # Read once: the consume thread may replace them (set them to None) meanwhile.
        member, outbox = self._member, self._outbox
        assigned = member.assigned if member else set()
        running = [slot.key for lane in self.lanes for slot in lane.running]
        return {
            "block": self.block,
            "node": self.node,
            "worker_pid": self.lanes[0].link.pid if self.lanes else None,
            "worker_pids": [lane.link.pid for lane in self.lanes],
            "state": self.state,
            "job": running[0] if running else None,
            "jobs": running,
            "queued": len(self._jobs),
            "partitions": sorted(p for t, p in assigned if t == PENDING_TOPIC),
            "lanes": sorted(f"{t}:{p}" for t, p in assigned if t != PENDING_TOPIC),
            "paused": sorted(f"{t}:{p}" for t, p in (member.paused if member else set())),
            "processed": self.flow.processed,
            "handed_over": self.handover.handed_over,
            "transactions": outbox.transactions if outbox else 0,
            "group_instance_id": self.group_instance_id,
            "restarts": self.restarts,
            "error": self.error,
            "hook_errors": self.hooks.errors,
            "cancels": len(self.cancels),  # cancels read from cancelJobs (and not withdrawn)
            # Commits the cancel check withdrew, and made without it (cancelling.py).
            "commits_withdrawn": self.flow.withheld[0],
            "commits_unchecked": self.flow.withheld[1],
        }

    def _all_held(self, seconds: float) -> bool:
        return bool(self.lanes) and all(lane.held(seconds) for lane in self.lanes)

    def _run(self) -> None:
        """The consume thread. Whatever ends a round of it (a bug, a broker away for longer
        than a client survives), the block says so and starts again with new clients, reading
        from the committed offsets: it never stops consuming while its actor lives."""
        self._read_cancels()
        while not self._stop.is_set():
            try:
                self._serve()
            except BaseException as exc:  # any end of a round, SystemExit from a hook included
                self._died(exc)
        self._shut_down()

    def _read_cancels(self) -> None:
        """Wait until every cancel on the topic when the block started has been read: a job
        cancelled before must not run because its record came first."""
        while not self._stop.is_set():
            if self._cancel_reader.at_end.wait(CANCELS_WAIT_SECONDS):
                return
            _log.warning("block %s: still reading %s before taking any job", self.block,
                         CANCEL_TOPIC)  # fmt: skip

    def _serve(self) -> None:
        if self._reseat.is_set():  # asked while a round was starting or dead: join anew
            self._next_seat()
        elif not self._seat_changed:
            # A first start waits for the workers' processes; a restart does not wait
            # long. A new seat keeps the lanes as they are (they may be awaiting a worker).
            for lane in self.lanes:
                lane.link.refresh(
                    WORKER_ASK_ON_RESTART_SECONDS if self.restarts else WORKER_FIRST_SECONDS
                )
                lane.link.send_to_current()
        self._seat_changed = False
        self._outbox = Outbox(self.settings.bootstrap_servers, self.member_id)
        self._member = GroupMember(self.settings, self.group_instance_id, self.topics)
        self.flow.begin(self._member, self._outbox, Positions())
        while not self._stop.is_set():
            if self._reseat.is_set():  # close this round; the next joins with a new seat
                self._next_seat()
                self._seat_changed = True
                self.flow.let_go()
                self._close_clients()
                return
            try:
                self.flow.step(take=True)
                self.state = self._state()
            except ConsumerDead as dead:
                # What is in hand is let go and taken up again when its records come back.
                self.flow.let_go()
                self._member.rejoin(dead)
                self.flow.begin(self._member, self._outbox, Positions())

    def _next_seat(self) -> None:
        """The next round joins as ``<seat>.<n>``: the seat's run part changes, its block
        part stays (``doctor`` reads seats so)."""
        self._reseat.clear()
        self._seats += 1
        self.group_instance_id = f"{self._first_seat}.{self._seats}"
        _log.warning("block %s: rejoining the group as %s", self.block, self.group_instance_id)

    def _state(self) -> BlockState:
        if any(lane.restarting for lane in self.lanes):
            return BlockState.RESTARTING_WORKER
        if any(lane.running for lane in self.lanes):
            return BlockState.BUSY
        return BlockState.RETRY_BACKOFF if self.flow.backing_off else BlockState.IDLE

    def _died(self, exc: BaseException) -> None:
        """The consume thread's round ended by ``exc``: report it, let go of what is not
        committed (it is read again, and running jobs are taken up again), and pause."""
        self.state = BlockState.DEAD
        self.error = f"{type(exc).__name__}: {exc}"
        self.restarts += 1
        _log.error(
            "block %s: consume thread died, restarting it: %s", self.block, exc, exc_info=exc
        )
        self.flow.let_go()
        self._close_clients()
        self._stop.wait(RESTART_PAUSE_SECONDS)

    def _shut_down(self) -> None:
        """Drain: no new record is taken; jobs running go on until they end or the drain
        time is up; then what is answered is committed."""
        self.state = BlockState.STOPPING
        if self._member is not None and self._outbox is not None:
            try:
                self.flow.drain()
            except Exception as exc:  # fenced, or the broker away: the records are read again
                _log.warning("block %s: draining on stop failed: %s", self.block, exc)
        self._lanes_stop.set()
        self._close_clients()
        self._cancel_reader.stop()
        self.state = BlockState.STOPPED

    def _close_clients(self) -> None:
        try:
            self.flow.settle()  # no transaction left running on the outbox
        finally:  # whatever ended it, the clients close
            member, outbox, self._member, self._outbox = self._member, self._outbox, None, None
            for client in (member, outbox):
                if client is not None:
                    try:
                        client.close()
                    except Exception as exc:  # a client in a bad state must not block the rest
                        _log.warning("block %s: closing %s: %s", self.block, type(client), exc)

    @property
    def worker_pid(self) -> int | None:
        return self.lanes[0].link.pid if self.lanes else None
