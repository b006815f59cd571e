"""The one way this project follows topics: the analyzer's feed, the web app's live feed and
the SDK's completion watcher are each a ``TopicFollower``.

A follower reads every partition of its topics by explicit offsets (no consumer group, so
nothing to rebalance and nothing committed), ``read_committed`` (an answer is seen only once
its transaction committed), on a thread of its own, and hands each record to one handler.
It starts from the beginning, from the end as it stands when the follower starts (never
``OFFSET_END``, which would skip a record written before the first fetch), or from the last
N records of each partition. A broker restart costs it nothing: librdkafka reconnects and
fetches on from the offsets it had. A handler that raises is logged and skipped: one bad
record never stops a follower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from computeinfra.kafka.clients import (
    METADATA_TIMEOUT_SECONDS,
    TopicMissing,
    partition_count,
    reader,
)

__all__ = ["BEGINNING", "END", "Start", "TopicFollower", "tail"]

_log = logging.getLogger("computeinfra.follow")
POLL_SECONDS = 0.2
TOPIC_WAIT_SECONDS = 2.0
STOP_JOIN_SECONDS = 5.0
# A topic just created has partitions whose leader is not elected yet for a moment
# (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE): a start asked for now waits that out.
ASSIGN_NOW_SECONDS = 15.0
# librdkafka does not mark these retriable in a watermark query's error.
_ELECTING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


@dataclass(frozen=True)
class Start:
    """Where to start reading each partition: ``tail`` records before its end, or all of
    it (``tail=None``), or none of it (``tail=0``)."""

    tail: int | None


BEGINNING = Start(None)
END = Start(0)


def tail(records: int) -> Start:
    return Start(max(records, 0))


def end_offsets(consumer: Consumer, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """The end (high watermark) of every partition of ``topics`` that holds records."""
    ends = {}
    for topic in topics:
        for partition in range(partition_count(consumer, topic)):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_SECONDS
            )
            if high > low:
                ends[(topic, partition)] = high
    return ends


def start_offsets(consumer: Consumer, topics: Sequence[str], start: Start) -> list[TopicPartition]:
    """Explicit offsets for every partition of ``topics``; raises ``KafkaError`` while a
    topic does not exist."""
    offsets = []
    for topic in topics:
        for partition in range(partition_count(consumer, topic)):
            if start.tail is None:
                offsets.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
                continue
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=METADATA_TIMEOUT_SECONDS
            )
            offsets.append(TopicPartition(topic, partition, max(low, high - start.tail)))
    return offsets


Handler = Callable[[Message], None]


class TopicFollower:
    """Reads ``topics`` from ``start`` on a thread, calling ``handle`` for each record in
    partition order. ``caught_up`` is set once a poll finds nothing new; ``at_end`` once
    every record that was in the topics when it started reading has been handled (a poll
    may find nothing before the first fetch answers: only ``at_end`` is sure to have seen
    them), or while a topic does not exist (it holds nothing). ``between_polls``, if given,
    runs on the thread before every poll (e.g. to serve a producer's callbacks)."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        handle: Handler,
        *,
        start: Start = BEGINNING,
        client_id: str = "computeinfra-follower",
        between_polls: Callable[[], object] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.topics = tuple(topics)
        self._handle = handle
        self._start = start
        self._between_polls = between_polls
        self._poll_seconds = poll_seconds
        self._consumer = reader(bootstrap, client_id=client_id)
        self._assigned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=client_id, daemon=True)
        self.caught_up = threading.Event()
        self.at_end = threading.Event()
        self._ends: dict[tuple[str, int], int] = {}

    def start(self, *, assign_now: bool = False) -> TopicFollower:
        """Start following. With ``assign_now`` the start offsets are fixed before this
        returns (and a missing topic raises here); otherwise the thread waits for them."""
        if assign_now:
            try:
                self._assign_soon()
            except BaseException:
                self._consumer.close()
                raise
            self._assigned = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_JOIN_SECONDS)
        if not self._thread.is_alive():
            self._consumer.close()

    def _assign(self) -> bool:
        while not self._stop.is_set():
            try:
                self._assign_once()
                return True
            except TopicMissing as exc:  # nothing to read yet: at its end until it exists
                self.at_end.set()
                _log.info("waiting for topics %s: %s", ", ".join(self.topics), exc)
                self._stop.wait(TOPIC_WAIT_SECONDS)
            except Exception as exc:  # the broker is away
                _log.warning("waiting for topics %s: %s", ", ".join(self.topics), exc)
                self._stop.wait(TOPIC_WAIT_SECONDS)
        return False

    def _assign_soon(self) -> None:
        """``_assign_once``, asked again while the broker answers with a retriable error."""
        deadline = time.monotonic() + ASSIGN_NOW_SECONDS
        while True:
            try:
                self._assign_once()
                return
            except KafkaException as exc:
                error = exc.args[0]
                settling = error.retriable() or error.code() in _ELECTING
                if not settling or time.monotonic() > deadline:
                    raise
                _log.info("waiting for topics %s: %s", ", ".join(self.topics), exc)
                time.sleep(0.2)  # the leader election takes a moment

    def _assign_once(self) -> None:
        self._ends = end_offsets(self._consumer, self.topics)
        self._consumer.assign(start_offsets(self._consumer, self.topics, self._start))

    def _run(self) -> None:
        if not self._assigned and not self._assign():
            return
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # the follower must outlive whatever one step meets
                _log.exception("following %s", ", ".join(self.topics))
                self._stop.wait(TOPIC_WAIT_SECONDS)

    def _step(self) -> None:
        if self._between_polls is not None:
            self._between_polls()
        message = self._consumer.poll(self._poll_seconds)
        if message is None:
            self.caught_up.set()
        elif message.error() is None:
            self._deliver(message)
        else:  # transient (a broker away): librdkafka retries by itself
            _log.debug("following %s: %s", ", ".join(self.topics), message.error())
        if not self.at_end.is_set():  # after the record polled was handled
            self._look_for_end()

    def _look_for_end(self) -> None:
        """Set ``at_end`` once every partition's position is past the end it had at the
        start. Positions, not the offsets seen: transaction markers take offsets too."""
        if self._ends:
            wanted = [TopicPartition(t, p) for t, p in self._ends]
            positions = self._consumer.position(wanted)
            if any(tp.offset < self._ends[(tp.topic, tp.partition)] for tp in positions):
                return
        self.at_end.set()

    def _deliver(self, message: Message) -> None:
        try:
            self._handle(message)
        except Exception:  # one unreadable record must not stop the follower
            _log.exception(
                "skipping %s/%s@%s: its handler failed",
                message.topic(),
                message.partition(),
                message.offset(),
            )
