"""A block's transaction and its check (``block/transaction.py``), on the session's broker.

The check (issue #14's: has the block read every cancel?) is asked once the transaction's
records are delivered and its offsets sent: whatever it says or raises, no answer may be
committed without it, and no transaction may stay open behind it. A record the broker
refuses on delivery is named, and commits nothing either.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from computeinfra.block.transaction import Outbox, OutboxRecord, RecordsRefused, Withdrawn
from computeinfra.kafka.clients import make_consumer
from computeinfra.testing.stack import DevStack
from tests.helpers import read_topic, wait_for


def _topics(bootstrap: str, **config: str) -> tuple[str, str]:
    """A fresh answers topic (with ``config``) and a fresh requests topic."""
    names = (f"outbox-answers-{uuid.uuid4().hex[:8]}", f"outbox-requests-{uuid.uuid4().hex[:8]}")
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the futures settle
    topics = [NewTopic(names[0], 1, 1, config=config), NewTopic(names[1], 1, 1)]
    for future in admin.create_topics(topics).values():
        future.result(30)
    return names


def _open_transaction(bootstrap: str, topic: str) -> bool:
    """Whether a transaction holds ``topic``'s last stable offset behind its end."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    ends = {}
    for level in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED):
        asked = {TopicPartition(topic, 0): OffsetSpec.latest()}
        found = admin.list_offsets(asked, isolation_level=level)
        ends[level] = next(iter(found.values())).result(30).offset
    return ends[IsolationLevel.READ_COMMITTED] < ends[IsolationLevel.READ_UNCOMMITTED]


def _committed(consumer: Consumer, topic: str) -> int:
    found = consumer.committed([TopicPartition(topic, 0)], timeout=30)
    return found[0].offset


def _commit(
    box: Outbox,
    consumer: Consumer,
    offset: TopicPartition,
    answer: OutboxRecord,
    check: Callable[[], bool] = lambda: True,
) -> None:
    """Commit one answer with one offset, as the consumer's group, asking ``check``."""
    box.commit(consumer.consumer_group_metadata(), [offset], [answer], (), check)


@pytest.fixture
def outbox(stack: DevStack) -> Iterator[tuple[Outbox, Consumer, str, str]]:
    """An outbox, a consumer of a group of its own, an answers and a requests topic."""
    bootstrap = stack.settings.bootstrap_servers
    answers, requests = _topics(bootstrap)
    consumer = make_consumer(bootstrap, f"outbox-test-{uuid.uuid4().hex[:8]}")
    box = Outbox(bootstrap, f"outbox-test-{uuid.uuid4().hex[:8]}")
    try:
        yield box, consumer, answers, requests
    finally:
        box.close()
        consumer.close()


def test_a_check_that_says_no_commits_nothing_and_the_next_commit_goes_through(
    stack: DevStack, outbox: tuple[Outbox, Consumer, str, str]
) -> None:
    box, consumer, answers, requests = outbox
    bootstrap = stack.settings.bootstrap_servers
    offset = TopicPartition(requests, 0, 5)
    with pytest.raises(Withdrawn):
        _commit(box, consumer, offset, OutboxRecord(answers, b"k", b"no"), lambda: False)
    _commit(box, consumer, offset, OutboxRecord(answers, b"k", b"yes"))
    assert [value for _key, value, _h in read_topic(bootstrap, answers)] == [b"yes"]
    assert _committed(consumer, requests) == 5
    assert box.transactions == 1


def test_a_check_that_raises_leaves_no_transaction_open_and_commits_nothing(
    stack: DevStack, outbox: tuple[Outbox, Consumer, str, str]
) -> None:
    box, consumer, answers, requests = outbox
    bootstrap = stack.settings.bootstrap_servers
    offset = TopicPartition(requests, 0, 3)

    def broken() -> bool:
        raise RuntimeError("the check failed")

    with pytest.raises(RuntimeError, match="the check failed"):
        _commit(box, consumer, offset, OutboxRecord(answers, b"k", b"lost"), broken)
    # Aborted at once: left open, it would hold every read_committed reader of the topic
    # back until the next commit, or the transaction's timeout.
    wait_for(lambda: not _open_transaction(bootstrap, answers), 10, "the transaction ended")
    _commit(box, consumer, offset, OutboxRecord(answers, b"k", b"kept"))
    assert [value for _key, value, _h in read_topic(bootstrap, answers)] == [b"kept"]
    assert _committed(consumer, requests) == 3


def test_commits_in_turn_through_both_ids_keep_the_latest_offset_and_every_answer(
    stack: DevStack, outbox: tuple[Outbox, Consumer, str, str]
) -> None:
    """The outbox takes its two transactional ids in turn: back to back, each commit's
    offset is the one the group keeps, whichever id's markers land last."""
    box, consumer, answers, requests = outbox
    bootstrap = stack.settings.bootstrap_servers
    for offset in range(1, 9):
        value = f"answer-{offset}".encode()
        _commit(
            box, consumer, TopicPartition(requests, 0, offset), OutboxRecord(answers, b"k", value)
        )
        assert _committed(consumer, requests) == offset
    expected = [f"answer-{offset}".encode() for offset in range(1, 9)]
    assert [value for _key, value, _h in read_topic(bootstrap, answers)] == expected
    assert box.transactions == 8


def test_a_new_outbox_fences_both_ids_of_the_one_it_replaces(
    stack: DevStack, outbox: tuple[Outbox, Consumer, str, str]
) -> None:
    """A restarted supervisor's outbox must fence whichever id its previous incarnation
    would have used next: neither of the old producers may commit after the restart."""
    box, consumer, answers, requests = outbox
    bootstrap = stack.settings.bootstrap_servers
    successor = Outbox(bootstrap, box._ids[0])
    try:
        for old in box._producers:  # the replaced incarnation's two, as they were
            old.begin_transaction()
            old.produce(answers, b"zombie", b"k")
            with pytest.raises(KafkaException) as fenced:
                old.commit_transaction(30)
            assert fenced.value.args[0].fatal()  # fenced for good, not a retriable hiccup
        _commit(
            successor, consumer, TopicPartition(requests, 0, 4), OutboxRecord(answers, b"k", b"new")
        )
    finally:
        successor.close()
    assert [value for _key, value, _h in read_topic(bootstrap, answers)] == [b"new"]
    assert _committed(consumer, requests) == 4


def test_a_record_the_broker_refuses_on_delivery_is_named_and_commits_nothing(
    stack: DevStack,
) -> None:
    # The producer takes a 4 KB record (its own limit is 1 MB); the topic does not. The
    # offsets are sent while the record is delivered: its refusal must still be named.
    bootstrap = stack.settings.bootstrap_servers
    answers, requests = _topics(bootstrap, **{"max.message.bytes": "1024"})
    consumer = make_consumer(bootstrap, f"outbox-test-{uuid.uuid4().hex[:8]}")
    box = Outbox(bootstrap, f"outbox-test-{uuid.uuid4().hex[:8]}")
    try:
        offset = TopicPartition(requests, 0, 7)
        with pytest.raises(RecordsRefused) as refused:
            _commit(box, consumer, offset, OutboxRecord(answers, b"k", b"x" * 4096))
        assert list(refused.value.refused) == [0]
        wait_for(lambda: not _open_transaction(bootstrap, answers), 10, "the transaction ended")
        assert _committed(consumer, requests) < 0  # nothing committed
        _commit(box, consumer, offset, OutboxRecord(answers, b"k", b"small"))
        assert [value for _key, value, _h in read_topic(bootstrap, answers)] == [b"small"]
        assert _committed(consumer, requests) == 7
    finally:
        box.close()
        consumer.close()
