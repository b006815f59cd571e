"""Handing over: jobs a busy block cannot start soon go to a block that can.

A block's workers can all be held by long jobs while records keep landing on its
partitions. Those records must not wait for them when other blocks are idle. Once every one
of its workers has been on one job for ``handover_seconds``, the jobs in the block's queue
are handed over: each request is written again,
unchanged, to a partition of the same topic that another block owns, in the same
transaction that commits the original record as answered. So the job is neither lost nor
doubled on the way, and runs once, wherever it lands.

Why the same topic, not an overflow topic every block also reads: one consumer group
balances the *sum* of its topics' partitions, so a second topic could leave a block with
all of one topic and none of the other (seen in test_blocks). A key's partition in
``pendingJobs`` only routes a request; nothing looks a job up by it.

A block also *shares* its queue with blocks whose workers are idle (``share``, the peers'
loads from ``peers.py``): the newest jobs of a queue that would keep its workers busy
for a while go to an idle block's partitions the same way, so a batch ends on every
block at about the same time.

Quick churn is never handed over (workers that take new jobs every moment are not held),
nor a retry (its attempt count stays here). A job is handed over at most ``MAX_HANDOVERS``
times, so two busy blocks do not pass it back and forth.

A stopping block *passes on* the jobs its drain could not end and that made attempts here
(``pass_on``): the same record again, with ``computeinfra.attempts``, so the next attempt,
wherever it runs, counts on from them.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaException

from computeinfra.protocol import ATTEMPTS_HEADER, HANDOVERS_HEADER

from .backlog import JobQueue
from .peers import Peer, PeerBoard
from .records import OutboxRecord
from .slots import FORWARDED_BY_HEADER, Slot, header_pairs, record_ms

__all__ = ["HANDOVERS_HEADER", "MAX_HANDOVERS", "Handover", "handover_record", "handovers"]

_log = logging.getLogger("computeinfra.supervisor")
MAX_HANDOVERS = 2
METADATA_TIMEOUT_SECONDS = 5.0
METADATA_RETRY_SECONDS = 5.0
# A queue holding less work than this per worker of this block is not shared: a job handed
# over starts elsewhere only after this block's next transaction and the other's fetch
# (10 to 30 ms here), and each costs the broker a record and a fetch more.
SHARE_AFTER_SECONDS = 0.2
SHARED = "it had a queue while another block had idle workers"
# How long a peer's worker must have been idle to be given jobs (``starving``).
SHARE_IDLE_SECONDS = 0.05
SHARE_IDLE_LONG_SECONDS = 1.0


def handovers(slot: Slot) -> int:
    """How many times ``slot``'s request was handed over before it came here."""
    for name, value in header_pairs(slot.message):
        if name == HANDOVERS_HEADER and value:
            try:
                return int(value)
            except ValueError:
                return MAX_HANDOVERS  # not ours to read: never passed on again
    return 0


class Handover:
    """Picks the partition for each job handed over: one of its topic this block does not
    own, in turn, so the jobs spread over the blocks that do."""

    def __init__(
        self,
        after: float,
        all_held: Callable[[float], bool],
        block: int,
        *,
        workers: int = 1,
        board: PeerBoard | None = None,
    ) -> None:
        self.after = after  # seconds; 0 turns handing over off, sharing too
        self.block = block
        self.workers = max(workers, 1)
        self._all_held = all_held
        self._board = board
        self._partitions: dict[str, list[int]] = {}
        self._unreadable_until: dict[str, float] = {}
        self._turn = itertools.count()
        self.handed_over = 0

    def due(self) -> bool:
        """Whether this block's workers have all been on one job for ``after`` seconds."""
        return self.after > 0 and self._all_held(self.after)

    def eligible(self, slot: Slot) -> bool:
        return (
            slot.assignment is not None
            and slot.assignment.attempt == 1
            and handovers(slot) < MAX_HANDOVERS
        )

    def take(self, jobs: JobQueue, consumer: Consumer, owned: set[tuple[str, int]]) -> list[Slot]:
        """Take from ``jobs`` those to hand over now, each answered by its record for another
        block's partition: while every worker here has been on one job for ``after``
        seconds, the queued jobs whose topic has a partition another block owns; else, a
        share of the queue for blocks whose workers are idle (``share``)."""
        if not len(jobs):
            return []
        if not self.due():
            return self.share(jobs, owned)
        # Asked before taking the queue's lock: reading a topic's partitions can wait on
        # the broker, and the lanes must not.
        targets = {t for t in jobs.topics() if self.has_target(consumer, owned, t)}
        now = time.monotonic()

        def movable(slot: Slot) -> bool:
            # A first hop goes at once: a job queued now would wait for the held workers too
            # (waiting out ``after`` itself made p99 2.2 s beside a long job, bench longjob).
            # A job handed over already waits ``after`` again, so two busy blocks do not
            # spend its hops on each other in a moment.
            first = handovers(slot) == 0
            waited = first or now - slot.queued_at >= self.after
            return waited and self.eligible(slot) and (slot.message.topic() or "") in targets

        taken, stay = [], []
        for slot in jobs.take_if(movable):
            partition = self.target(consumer, owned, slot.message.topic() or "")
            if partition is None:  # the metadata changed in between: it stays, first in line
                stay.append(slot)
                continue
            slot.records = [handover_record(slot, partition, self.block)]
            slot.assignment = None
            self.handed_over += 1
            taken.append(slot)
        jobs.put_front(stay)
        return taken

    def share(self, jobs: JobQueue, owned: set[tuple[str, int]]) -> list[Slot]:
        """The newest queued jobs, for blocks seen with idle workers: as many as makes each
        worker, here and there, about as busy (``len(jobs) * idle / (workers + idle)``),
        each for a partition of its topic the idle block owns. Only while the queue holds
        ``SHARE_AFTER_SECONDS`` of work for this block's workers: a shorter one ends
        before a job handed over would start elsewhere."""
        if self.after <= 0 or self._board is None:
            return []
        if jobs.work(untimed=0.0) / self.workers < SHARE_AFTER_SECONDS:
            return []
        self._board.want()
        oldest = jobs.oldest()
        if oldest is None:
            return []
        now = time.monotonic()
        peers = [
            peer
            for peer in self._board.idle()
            if peer.partitions - owned and starving(peer, oldest, now)
        ]
        idle = sum(peer.idle for peer in peers)
        count = len(jobs) * idle // (self.workers + idle) if idle else 0
        taken: list[Slot] = []
        for peer in peers:
            share = min(max(count * peer.idle // idle, 1), count - len(taken))
            given = self._give(jobs, sorted(peer.partitions - owned), share) if share else []
            if given:
                self._board.offered(peer.member)
            taken += given
        return taken

    def _give(self, jobs: JobQueue, theirs: list[tuple[str, int]], count: int) -> list[Slot]:
        """Up to ``count`` of the newest queued jobs, each for one of ``theirs`` (another
        block's partitions) of its topic, in turn."""
        topics = {topic for topic, _partition in theirs}

        def fits(slot: Slot) -> bool:
            # Never one handed over already: shares do not pass jobs back and forth, nor use
            # up the hops a job may need to leave a block held by a long one.
            topic = slot.message.topic() or ""
            return self.eligible(slot) and handovers(slot) == 0 and topic in topics

        taken = jobs.take_last(count, fits)
        for slot in taken:
            topic = slot.message.topic() or ""
            partitions = [p for t, p in theirs if t == topic]
            partition = partitions[next(self._turn) % len(partitions)]
            slot.records = [handover_record(slot, partition, self.block, why=SHARED)]
            slot.assignment = None
            self.handed_over += 1
        return taken

    def pass_on(
        self, slot: Slot, consumer: Consumer, owned: set[tuple[str, int]], attempts: int
    ) -> None:
        """Answer ``slot`` by its record for another block's partition (if every one is
        ours, its own: whoever owns it next reads it), with the ``attempts`` it made: a
        stopping block's job that did not end runs again elsewhere, its attempt counted.

        ``slot`` is released first, and keeps its assignment: a lane may still be running
        it, pairs its result by the assignment, and gives it to no one."""
        slot.released = True
        topic = slot.message.topic() or ""
        partition = self.target(consumer, owned, topic)
        if partition is None:
            partition = slot.message.partition() or 0
        slot.records = [handover_record(slot, partition, self.block, attempts)]
        self.handed_over += 1

    def has_target(self, consumer: Consumer, owned: set[tuple[str, int]], topic: str) -> bool:
        """Whether another block owns a partition of ``topic`` (as far as is known)."""
        return any((topic, p) not in owned for p in self._partitions_of(consumer, topic))

    def target(self, consumer: Consumer, owned: set[tuple[str, int]], topic: str) -> int | None:
        """A partition of ``topic`` another block owns, or None if every one is ours."""
        others = [p for p in self._partitions_of(consumer, topic) if (topic, p) not in owned]
        if not others:
            return None
        return others[next(self._turn) % len(others)]

    def _partitions_of(self, consumer: Consumer, topic: str) -> list[int]:
        if topic in self._partitions:
            return self._partitions[topic]
        if time.monotonic() < self._unreadable_until.get(topic, 0.0):
            return []  # asked a moment ago and the broker did not say: not again yet
        try:
            found = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_SECONDS)
            self._partitions[topic] = sorted(found.topics[topic].partitions)
        except (KafkaException, KeyError) as exc:
            _log.warning("cannot read %s's partitions: %s", topic, exc)
            self._unreadable_until[topic] = time.monotonic() + METADATA_RETRY_SECONDS
            return []
        return self._partitions[topic]


def starving(peer: Peer, waiting_since: float, now: float) -> bool:
    """Whether ``peer`` should have a share of a queue whose oldest job has waited since
    ``waiting_since`` (monotonic, as ``now``). One that ran out of work while that job
    waited: once idle for ``SHARE_IDLE_SECONDS``. One idle since before may only be between
    its own records (a batch's start, seen: a block gave half its queue to a peer whose
    first fetch had not come back, which later had to give jobs back), so only once this
    board has seen it idle for ``SHARE_IDLE_LONG_SECONDS``."""
    if peer.idle_since >= waiting_since:
        return now - peer.idle_since >= SHARE_IDLE_SECONDS
    return now - peer.seen_idle_since >= SHARE_IDLE_LONG_SECONDS


def handover_record(
    slot: Slot, partition: int, block: int, attempts: int = 0, why: str | None = None
) -> OutboxRecord:
    """``slot``'s request, unchanged, for ``partition`` of the topic it came from;
    ``attempts``: those it made here (a stopping block's job that did not end); ``why``:
    what its forward says of it (by default, the reason of a handover or a pass-on)."""
    message = slot.message
    ours = (HANDOVERS_HEADER, FORWARDED_BY_HEADER, ATTEMPTS_HEADER)
    headers = [h for h in header_pairs(message) if h[0] not in ours]
    why = why or ("it stopped before the job ended" if attempts else "its workers are all held")
    headers += [
        (HANDOVERS_HEADER, str(handovers(slot) + 1).encode()),
        (FORWARDED_BY_HEADER, f"block-{block}: {why}".encode()),
        *([(ATTEMPTS_HEADER, str(attempts).encode())] if attempts else []),
    ]
    topic = message.topic() or ""
    return OutboxRecord(
        topic, message.key(), message.value() or b"", headers, partition, record_ms(message)
    )
