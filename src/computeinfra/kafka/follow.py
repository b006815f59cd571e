"""The one way this project follows topics: the analyzer's feed, the web app's live feed, the
SDK's completion watcher, the CLI's and a block's cancel reader are each a ``TopicFollower``.

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
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from computeinfra.kafka.clients import (
    METADATA_TIMEOUT_SECONDS,
    TopicMissing,
    electing,
    partition_count,
    reader,
)
from computeinfra.kafka.fetching import Fetching, fetch_config

__all__ = ["BEGINNING", "END", "Start", "TopicFollower", "tail"]

_log = logging.getLogger("computeinfra.follow")
POLL_SECONDS = 0.2
TOPIC_WAIT_SECONDS = 2.0
STOP_JOIN_SECONDS = 5.0
# A topic just created has partitions whose leader is not elected yet for a moment
# (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE): a start asked for now waits that out.
ASSIGN_NOW_SECONDS = 15.0
Where = tuple[str, int]


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
    runs on the thread before every poll (e.g. to serve a producer's callbacks).
    ``fetching``: how long the broker holds each fetch, and for how much (``fetching.py``)."""

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
        track_reads: bool = False,
        fetching: Fetching = Fetching.PROMPT,
    ) -> None:
        self.topics = tuple(topics)
        self._handle = handle
        self._start = start
        self._between_polls = between_polls
        self._poll_seconds = poll_seconds
        self._consumer = reader(bootstrap, client_id=client_id, **fetch_config(fetching))
        self._bootstrap, self._client_id = bootstrap, client_id
        self._asker: Consumer | None = None  # for ``read_past``, made on first use
        self._assigned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=client_id, daemon=True)
        self.caught_up = threading.Event()
        self.at_end = threading.Event()
        self._ends: dict[tuple[str, int], int] = {}
        # Where each partition has been read to, once its records' handlers have run
        # (``read_past``); negative until a first record is read.
        self._read: dict[Where, int] = {}
        self._read_changed = threading.Condition()
        self._track_reads = track_reads  # for ``read_past``: a position asked each poll

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
        if self._asker is not None:
            self._asker.close()

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
                settling = electing(error)
                if not settling or time.monotonic() > deadline:
                    raise
                _log.info("waiting for topics %s: %s", ", ".join(self.topics), exc)
                time.sleep(0.2)  # the leader election takes a moment

    def _assign_once(self) -> None:
        self._ends = end_offsets(self._consumer, self.topics)
        offsets = start_offsets(self._consumer, self.topics, self._start)
        self._consumer.assign(offsets)
        with self._read_changed:
            self._read = {(tp.topic, tp.partition): -1 for tp in offsets}

    def read_past(self, timeout: float) -> bool:
        """Whether every record in the topics now (up to each partition's last stable
        offset) has been handled, waiting up to ``timeout`` s for the thread to get there;
        ``False`` if the broker cannot say. One ListOffsets request (about 0.1 ms here),
        through a consumer of its own that never fetches: through the follower's, the
        query waits behind its long-polling fetch (measured: 500 ms). Only for a follower
        made with ``track_reads``."""
        assert self._track_reads, "read_past needs a follower made with track_reads"
        with self._read_changed:
            wanted = list(self._read)
        if not wanted:
            return self.at_end.is_set()  # no topic yet: nothing to read
        if self._asker is None:
            self._asker = reader(self._bootstrap, client_id=f"{self._client_id}-ends")
        deadline = time.monotonic() + timeout
        try:
            ends = self._offsets(wanted, OFFSET_END, timeout)
            unread = [where for where, none in self._behind(ends).items() if none]
            if unread:  # read nothing yet: maybe nothing is left to read (compacted away)
                first = self._offsets(unread, OFFSET_BEGINNING, timeout)
                ends = {w: e for w, e in ends.items() if first.get(w, -1) < e}
        except KafkaException as exc:
            _log.warning("where %s ends: %s", ", ".join(self.topics), exc)
            return False
        with self._read_changed:
            return self._read_changed.wait_for(
                lambda: not self._behind(ends), max(deadline - time.monotonic(), 0.0)
            )

    def _offsets(self, wanted: list[Where], spec: int, timeout: float) -> dict[Where, int]:
        """Each partition's end (``spec`` ``OFFSET_END``) or start (``OFFSET_BEGINNING``)."""
        assert self._asker is not None
        asked = [TopicPartition(topic, partition, spec) for topic, partition in wanted]
        found = self._asker.offsets_for_times(asked, timeout)
        failed = [tp for tp in found if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)
        return {(tp.topic, tp.partition): tp.offset for tp in found}

    def _behind(self, ends: dict[Where, int]) -> dict[Where, bool]:
        """The partitions not read up to ``ends``, each with whether it read nothing yet."""
        read = self._read
        return {
            k: read.get(k, -1) < 0 for k, end in ends.items() if end > 0 and read.get(k, -1) < end
        }

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
        if self._track_reads:
            self._note_read()

    def _note_read(self) -> None:
        """Note each partition's position, now that the records before it were handled."""
        with self._read_changed:
            wanted = [TopicPartition(t, p) for t, p in self._read]
        if not wanted:
            return
        read = {(tp.topic, tp.partition): tp.offset for tp in self._consumer.position(wanted)}
        with self._read_changed:
            self._read = read
            self._read_changed.notify_all()

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
