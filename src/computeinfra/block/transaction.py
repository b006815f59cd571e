"""The outbox: answers and their consumed offsets, committed in one Kafka transaction.

This is what makes completions exactly-once for ``read_committed`` readers: either a
completion is visible *and* its request's offset is committed (below the committed offset,
or listed in its metadata as answered), or neither happened and the request will be handled
again. One transaction carries every answer ready, so its cost is shared by every job it
answers. Each supervisor owns a stable pair of ``transactional.id``s, taken in turn; a
restarted incarnation calling ``init_transactions`` on both fences the one it replaces, and the
consumer group's generation fences a supervisor whose partitions moved elsewhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from confluent_kafka import KafkaError as RawKafkaError
from confluent_kafka import KafkaException, Producer, TopicPartition

from computeinfra.kafka.clients import make_producer

# Named here too: middleware written against this module's ``OutboxRecord`` keeps working.
from .records import OutboxRecord, PartitionLost, RecordsRefused, Withdrawn
from .sidecar import Sidecar

__all__ = ["Outbox", "OutboxRecord", "PartitionLost", "RecordsRefused", "Withdrawn"]

_log = logging.getLogger("computeinfra.outbox")
TXN_TIMEOUT_SECONDS = 30.0
# Kept short: a transaction only spans the publish, never a job, and an abandoned one blocks
# read_committed readers of its partitions until the broker aborts it.
TRANSACTION_TIMEOUT_MS = 15_000
WATCHDOG_MARGIN_SECONDS = 5.0
RETRY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
# What Kafka says of a record it will never take, however often it is sent: the transaction
# is aborted and the records named, so that their answers change (``commits.py``) instead of
# the same transaction failing forever.
REFUSED = {
    RawKafkaError.MSG_SIZE_TOO_LARGE,
    RawKafkaError.INVALID_RECORD,
    RawKafkaError.INVALID_MSG,
    RawKafkaError.INVALID_MSG_SIZE,
    RawKafkaError.RECORD_LIST_TOO_LARGE,
    RawKafkaError.INVALID_TIMESTAMP,
}
# The group moved on: this supervisor may no longer commit for the partition.
GROUP_FENCED = {
    RawKafkaError.ILLEGAL_GENERATION,
    RawKafkaError.UNKNOWN_MEMBER_ID,
    RawKafkaError.FENCED_INSTANCE_ID,
    RawKafkaError.REBALANCE_IN_PROGRESS,
}


def _backoff(attempt: int) -> float:
    return RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS) - 1)]


class _ProducerReplaced(Exception):
    """The transaction's producer was stuck and has been replaced; start the answer over."""


class Outbox:
    """Commits through two transactional producers in turn (``transactional_id`` and
    ``<transactional_id>.2``; a new incarnation fences both). A transaction begun while the
    one before is still writing its commit markers is refused, and librdkafka asks again
    only after a fixed 20 ms (CONCURRENT_TRANSACTIONS): back to back, the transaction hop's
    p95 was 29 ms, 14 to 21 ms in turn (docs/performance.md, change 5). Taking turns keeps the
    commits in order: the next begins once this one's commit returned, and the group
    coordinator keeps a partition's offset from the later commit whichever markers land
    first (it compares the commits' places in its log)."""

    def __init__(self, bootstrap: str, transactional_id: str) -> None:
        self._bootstrap = bootstrap
        self._ids = (transactional_id, f"{transactional_id}.2")
        self._turn = 0
        self._producers = [self._make(tid) for tid in self._ids]
        # Producers stuck inside librdkafka: kept referenced so they are never destroyed
        # while a thread is blocked in them (see ``_send_offsets``).
        self._stuck: list[Producer] = []
        self._sidecar = Sidecar("send-offsets")
        self.transactions = 0  # committed, for ``blocks`` and the benchmarks

    @property
    def _transactional_id(self) -> str:
        return self._ids[self._turn]

    @property
    def _producer(self) -> Producer:
        """The producer whose turn it is."""
        return self._producers[self._turn]

    @_producer.setter
    def _producer(self, producer: Producer) -> None:
        self._producers[self._turn] = producer

    def _new_producer(self) -> Producer:
        """A new producer for the current turn's transactional id."""
        return self._make(self._transactional_id)

    def _make(self, transactional_id: str) -> Producer:
        producer = make_producer(
            self._bootstrap,
            client_id=transactional_id,
            **{
                "transactional.id": transactional_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                # Every transaction is flushed as soon as its records are queued: lingering
                # would only add to each answer's latency.
                "linger.ms": 0,
            },
        )
        producer.init_transactions(TXN_TIMEOUT_SECONDS)
        return producer

    def commit(
        self,
        group: Any,
        offsets: Sequence[TopicPartition],
        records: Sequence[OutboxRecord],
        alone: Collection[int] = (),
        check: Callable[[], bool] | None = None,
    ) -> None:
        """Publish ``records`` and commit ``offsets``, atomically; retry until done.

        Raises ``PartitionLost`` if the group fenced us: the new owner handles the record;
        ``RecordsRefused`` if Kafka will never take some of the records as they are.
        ``alone``: the indexes of records sent in a request of their own, so that a refusal
        names only the record refused (a broker refuses a whole batch: every record in it).
        ``check``, if given, is asked once the records are delivered, just before the
        commit: ``False`` aborts the transaction and raises ``Withdrawn``. ``group``: the
        consumer's ``consumer_group_metadata()``, as of the rebalance the answers were taken
        after (``GroupMember.group_metadata``: a rebalance since fences the commit).
        """
        self._turn ^= 1
        attempt = 0
        while True:
            try:
                self._transact(group, offsets, records, frozenset(alone), check)
                self.transactions += 1
                return
            except _ProducerReplaced:
                continue
            except (RecordsRefused, Withdrawn):
                self._abort()
                raise
            except KafkaException as exc:
                error: RawKafkaError = exc.args[0]
                self._recover(error)
                if error.code() in GROUP_FENCED:
                    raise PartitionLost(error.str()) from exc
                delay = _backoff(attempt)
                _log.warning(
                    "%s: transaction failed (%s), retrying in %.1f s",
                    self._transactional_id,
                    error.str(),
                    delay,
                )
                time.sleep(delay)  # backing off from a broker that is away, not synchronising
                attempt += 1
            except BaseException:  # a bug (in a check, say): no transaction is left open behind it
                self._abort()
                raise

    def _transact(
        self,
        group: Any,
        offsets: Sequence[TopicPartition],
        records: Sequence[OutboxRecord],
        alone: frozenset[int],
        check: Callable[[], bool] | None,
    ) -> None:
        self._producer.begin_transaction()
        refused: dict[int, str] = {}
        for index, record in enumerate(records):
            if index in alone:  # what went before is delivered first, in its own batches
                self._deliver()
            self._produce(record, index, refused)
            if index in alone:
                self._deliver()
            if refused:  # the transaction takes nothing more now; it is aborted
                raise RecordsRefused(refused, alone)
        # The offsets go while the records are delivered, not after: the two overlap (3 to
        # 4 ms less at the median at 200/s: docs/performance.md, change 16). Delivered before
        # the check and the commit, every refusal is known: a refusal makes librdkafka fail
        # the rest of the transaction, and only the delivery reports name the record.
        try:
            if offsets:  # none: only records (a job's ``running``), no answer yet
                self._send_offsets(list(offsets), group, self._deliver)
            else:
                self._deliver()
        except KafkaException:
            if not refused:  # else the refusal failed the transaction: named below
                raise
        if refused:
            raise RecordsRefused(refused, alone)
        if check is not None and not check():
            raise Withdrawn
        self._commit_transaction()

    def _deliver(self) -> None:
        """Wait for the records in flight; their delivery reports (``_produce``) run here."""
        self._producer.flush(TXN_TIMEOUT_SECONDS)

    def _produce(self, record: OutboxRecord, index: int, refused: dict[int, str]) -> None:
        """Queue ``record``; one refused, at once or on delivery, is noted in ``refused``."""

        def delivered(error: RawKafkaError | None, _message: object) -> None:
            if error is not None and error.code() in REFUSED:
                refused[index] = error.str()

        # -1: by key, as Kafka's default partitioner (and any client) would place it.
        partition = -1 if record.partition is None else record.partition
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    partition,
                    on_delivery=delivered,
                    timestamp=record.timestamp_ms,
                    headers=list(record.headers),
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == RawKafkaError._STATE:
                    # A delivery failed before: the transaction can only be aborted. Its
                    # report says whether Kafka refused a record for good.
                    self._producer.poll(0)
                    if refused:
                        return
                if code not in REFUSED:
                    raise
                refused[index] = exc.args[0].str()
                return

    def _send_offsets(
        self, offsets: list[TopicPartition], group: Any, meanwhile: Callable[[], None]
    ) -> None:
        """``send_offsets_to_transaction`` under a watchdog, while this thread runs
        ``meanwhile``.

        librdkafka can block in it past its timeout when the group coordinator it cached went
        away (librdkafka#5456, #5511), as after a broker restart. Past the deadline the stuck
        producer is set aside (never destroyed under the blocked thread) and replaced; the
        replacement's ``init_transactions`` fences it, so its late answer cannot count.
        """
        producer, failure = self._producer, []

        def send() -> None:
            try:
                producer.send_offsets_to_transaction(offsets, group, TXN_TIMEOUT_SECONDS)
            except BaseException as exc:  # handed to the caller's thread below
                failure.append(exc)

        if not self._sidecar.run(send, meanwhile, TXN_TIMEOUT_SECONDS + WATCHDOG_MARGIN_SECONDS):
            _log.warning(
                "%s: send_offsets_to_transaction is stuck; replacing the producer",
                self._transactional_id,
            )
            self._stuck.append(producer)
            self._producer = self._new_producer()
            raise _ProducerReplaced
        if failure:
            raise failure[0]

    def _commit_transaction(self) -> None:
        """Commit; a retriable failure leaves the outcome unknown, so commit again, never
        abort and redo (that could make a committed answer visible twice)."""
        attempt = 0
        while True:
            try:
                self._producer.commit_transaction(TXN_TIMEOUT_SECONDS)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable():
                    raise
                _log.warning(
                    "%s: commit not confirmed (%s), asking again",
                    self._transactional_id,
                    exc.args[0].str(),
                )
                time.sleep(_backoff(attempt))  # the broker is away; back off, then ask again
                attempt += 1

    def _recover(self, error: RawKafkaError) -> None:
        """Leave the producer ready for a new transaction after ``error``."""
        if error.fatal():
            # Fenced by a newer incarnation, or the producer state is lost: start over.
            self._producer = self._new_producer()
            return
        self._abort()

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction(TXN_TIMEOUT_SECONDS)
        except KafkaException as exc:
            _log.warning(
                "%s: abort failed (%s); recreating the producer", self._transactional_id, exc
            )
            self._producer = self._new_producer()

    def close(self) -> None:
        self._sidecar.stop()
        for producer in self._producers:
            producer.flush(TXN_TIMEOUT_SECONDS)
