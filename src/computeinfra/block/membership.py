"""How a supervisor takes part in the consumer group.

Each supervisor is a static member (``group.instance.id``): a restarted one takes its
partitions straight back instead of triggering two rebalances. Cooperative-sticky
assignment moves only the partitions that must move.

The consume thread polls every few milliseconds whatever its jobs do (it pauses partitions
rather than stop polling), so ``max.poll.interval.ms`` is minutes, not the longest job: a
consume thread that truly hangs loses its partitions in that time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from computeinfra.config import Settings
from computeinfra.kafka.clients import make_consumer

from .stalled import STALLED_SECONDS, STATS_INTERVAL_MS, StalledFetches

__all__ = [
    "MAX_POLL_INTERVAL_MS",
    "SESSION_TIMEOUT_MS",
    "ConsumerDead",
    "GroupMember",
    "consume_records",
    "is_fatal",
    "make_supervisor_consumer",
]

_log = logging.getLogger("computeinfra.supervisor")

# How long the group waits for a silent member before giving its partitions to others.
SESSION_TIMEOUT_MS = 10_000
# The longest the consume thread may go without polling before the group gives its
# partitions to others. It polls every few ms; the slowest thing between two polls is a
# commit retried while the broker is away, or a middleware hook.
MAX_POLL_INTERVAL_MS = 300_000
# Reading the ends of partitions just assigned (one request; inside the rebalance).
ENDS_TIMEOUT_SECONDS = 5.0


def make_supervisor_consumer(
    settings: Settings, member_id: str, stats: Callable[[str], None] | None = None
) -> Consumer:
    """``stats``, if given, gets librdkafka's statistics every ``STATS_INTERVAL_MS``."""
    watch = {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": stats} if stats else {}
    return make_consumer(
        settings.bootstrap_servers,
        settings.group,
        client_id=member_id,
        **{
            "group.instance.id": member_id,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "partition.assignment.strategy": "cooperative-sticky",
            "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
            **watch,
        },
    )


class ConsumerDead(Exception):
    """The consumer hit a fatal error, or stopped fetching partitions it holds
    (``stalled.py``): it never works again and must be replaced."""


def is_fatal(error: KafkaError) -> bool:
    # librdkafka raises a fatal consumer error (a static member fenced by its own instance
    # id, which happens when a rejoin races a coordinator move) as an event with code
    # _FATAL, and ``fatal()`` is not set on that event.
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def _take(consumer: Consumer, count: int, timeout: float) -> list[Message]:
    """What is already fetched, up to ``count``; else wait up to ``timeout`` for the first.

    Not ``consume(count, timeout)``: that waits out the whole timeout unless ``count``
    records arrive, which puts ``timeout`` on every job's latency at low load.
    """
    messages = consumer.consume(count, 0)
    if messages:
        return messages
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(count - 1, 0)] if count > 1 else [first]


def consume_records(consumer: Consumer, count: int, timeout: float) -> list[Message]:
    """Up to ``count`` records; error events are logged and left out. Raises
    ``ConsumerDead`` when the consumer is in a fatal state."""
    try:
        messages = _take(consumer, count, timeout)
    except KafkaException as exc:
        error = exc.args[0]
        if is_fatal(error):
            raise ConsumerDead(error.str()) from exc
        _log.warning("consume error: %s", error)
        return []
    records = []
    for message in messages:
        error = message.error()
        if error is None:
            records.append(message)
        elif is_fatal(error):
            raise ConsumerDead(error.str())
        else:
            _log.warning("consume error: %s", error)
    return records


def _ends(consumer: Consumer, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
    """Each partition's end (its last stable offset: a ``read_committed`` reader never reads
    past it), in one request; a partition whose end cannot be read now is left out."""
    if not partitions:
        return {}
    latest = [TopicPartition(tp.topic, tp.partition, OFFSET_END) for tp in partitions]
    try:
        found = consumer.offsets_for_times(latest, timeout=ENDS_TIMEOUT_SECONDS)
    except KafkaException as exc:
        _log.warning("partition ends unknown (%s): their jobs count as inherited", exc)
        return {}
    return {
        (tp.topic, tp.partition): tp.offset for tp in found if tp.error is None and tp.offset >= 0
    }


class GroupMember:
    """A supervisor's seat in the consumer group: its consumer and the partitions it holds."""

    def __init__(self, settings: Settings, member_id: str, topics: Sequence[str]) -> None:
        self.settings = settings
        self.member_id = member_id
        self.topics = list(topics)
        self.assigned: set[tuple[str, int]] = set()
        self.paused: set[tuple[str, int]] = set()
        # Revoked while paused: librdkafka keeps a partition's pause across a revoke, so
        # one given back comes back paused (measured) and must be resumed by us.
        self._revoked_paused: set[tuple[str, int]] = set()
        # Bumped each time a partition is assigned or revoked: what was expected of it
        # under an earlier assignment no longer holds (``positions.py``).
        self.epochs: dict[tuple[str, int], int] = {}
        # Each partition's end when it was last assigned here (``positions.py``: which
        # records a previous owner may have read).
        self.ends: dict[tuple[str, int], int] = {}
        self._group_metadata: Any = None  # ``group_metadata``: kept until a rebalance
        self.consumer = self._join()

    def _join(self) -> Consumer:
        self._stalled = StalledFetches()  # a new consumer's statistics start afresh
        self._group_metadata = None
        consumer = make_supervisor_consumer(self.settings, self.member_id, self._stalled.read)
        consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        return consumer

    def group_metadata(self) -> Any:
        """The consumer's group metadata, which fences a transaction's offsets to this
        member and generation of the group (``Outbox.commit``).

        Kept between commits: librdkafka answers it on its main thread, a round trip that
        held the consume thread 1 to 2 ms a commit under load (docs/performance.md, change
        20). Taken again after every rebalance callback (an assign one ends every
        rebalance, even one that changes nothing here), with a new consumer, and after a
        fenced commit (``fenced``). One kept too long can only be refused (the coordinator
        takes no older generation), never commit for a newer one."""
        if self._group_metadata is None:
            self._group_metadata = self.consumer.consumer_group_metadata()
        return self._group_metadata

    def fenced(self) -> None:
        """A commit was fenced: the group moved on, and its metadata is taken again."""
        self._group_metadata = None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._group_metadata = None
        given = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned |= given
        self.paused |= self._revoked_paused & given  # still paused: ``pause_only`` resumes
        self._revoked_paused -= given
        self._stalled.assigned(given)
        self._bump(partitions)
        for where in given:  # an end from an earlier assignment would say too little
            self.ends.pop(where, None)
        self.ends.update(_ends(consumer, partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing is committed here: the answers in hand are let go after the poll
        # (``Flow._follow``); one in flight on the commit thread is fenced if it is late.
        # Committing from inside the rebalance callback can deadlock librdkafka's
        # transactional offset commit against the rebalance it is part of.
        self._group_metadata = None
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned -= gone
        self._revoked_paused |= self.paused & gone
        self.paused -= gone
        self._bump(partitions)

    def _bump(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            where = (tp.topic, tp.partition)
            self.epochs[where] = self.epochs.get(where, 0) + 1

    def records(self, count: int, timeout: float) -> list[Message]:
        """Up to ``count`` records. Raises ``ConsumerDead`` when the consumer is in a fatal
        state, or holds partitions it has stopped trying to fetch (``stalled.py``)."""
        stalled = self._stalled.stalled(self.assigned)
        if stalled:
            raise ConsumerDead(
                f"{', '.join(f'{t}:{p}' for t, p in stalled)} held but not fetched for"
                f" {STALLED_SECONDS:.0f} s: their committed offsets never came (librdkafka"
                " asks no more after a query the coordinator refused, librdkafka #5586)"
            )
        return consume_records(self.consumer, count, timeout)

    def pause_only(self, wanted: set[tuple[str, int]]) -> None:
        """Pause exactly the assigned partitions in ``wanted``; resume the others. Polling
        goes on either way: a paused partition is only not fetched."""
        wanted = wanted & self.assigned
        pause, resume = wanted - self.paused, self.paused - wanted
        try:
            if pause:
                self.consumer.pause([TopicPartition(t, p) for t, p in sorted(pause)])
            if resume:
                self.consumer.resume([TopicPartition(t, p) for t, p in sorted(resume)])
        except KafkaException as exc:  # mid-rebalance: asked again on the next step
            _log.debug("%s: pause/resume: %s", self.member_id, exc)
            return
        self.paused = wanted
        if resume:
            self._fetch_now(resume)

    def _fetch_now(self, resumed: set[tuple[str, int]]) -> None:
        """librdkafka's fetcher learns of a resume only when its broker thread next wakes:
        the next record came 0.7 to 1 s after ``resume`` whatever ``fetch.wait.max.ms``
        (``bench/resume.py``), while the queue that let the block resume holds 0.5 s of
        work. A seek to the offset each partition would fetch from anyway wakes it (3 to
        6 ms). One with no position (nothing read since it was assigned or last sought)
        is left to wake on its own. Best effort: a seek refused mid-rebalance is no error."""
        try:
            standing = self.consumer.position([TopicPartition(t, p) for t, p in sorted(resumed)])
        except KafkaException as exc:
            _log.debug("%s: position: %s", self.member_id, exc)
            return
        for tp in standing:
            if tp.offset < 0:
                continue
            try:  # without the leader epoch: no round trip to validate a position just held
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset))
            except KafkaException as exc:
                _log.debug("%s: seek %s: %s", self.member_id, tp, exc)

    def rejoin(self, reason: ConsumerDead) -> None:
        """A consumer in a fatal state never recovers: close it and join again, reading from
        the committed offsets."""
        _log.warning("%s: consumer failed for good (%s); joining again", self.member_id, reason)
        with contextlib.suppress(Exception):
            self.consumer.close()
        self.assigned.clear()
        self.paused.clear()
        self._revoked_paused.clear()  # a new consumer pauses nothing
        self.consumer = self._join()

    def close(self) -> None:
        self.consumer.close()
