"""A block's transaction and its check (``block/transaction.py``), on the session's broker.

The check (issue #14's: has the block read every cancel?) is asked once the transaction's
records are delivered and its offsets sent: whatever it says or raises, no answer may be
committed without it, and no transaction may stay open behind it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from computeinfra.block.transaction import Outbox, OutboxRecord, Withdrawn
from computeinfra.kafka.clients import make_consumer
from computeinfra.testing.stack import DevStack
from tests.helpers import read_topic, wait_for


def _topics(bootstrap: str) -> tuple[str, str]:
    """A fresh answers topic and a fresh requests topic."""
    names = (f"outbox-answers-{uuid.uuid4().hex[:8]}", f"outbox-requests-{uuid.uuid4().hex[:8]}")
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the futures settle
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in names]).values():
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
    offsets = [TopicPartition(requests, 0, 5)]
    with pytest.raises(Withdrawn):
        box.commit(
            consumer.consumer_group_metadata(),
            offsets,
            [OutboxRecord(answers, b"k", b"no")],
            (),
            lambda: False,
        )
    box.commit(
        consumer.consumer_group_metadata(),
        offsets,
        [OutboxRecord(answers, b"k", b"yes")],
        (),
        lambda: True,
    )
    assert [value for _key, value, _h in read_topic(bootstrap, answers)] == [b"yes"]
    assert _committed(consumer, requests) == 5
    assert box.transactions == 1


def test_a_check_that_raises_leaves_no_transaction_open_and_commits_nothing(
    stack: DevStack, outbox: tuple[Outbox, Consumer, str, str]
) -> None:
    box, consumer, answers, requests = outbox
    bootstrap = stack.settings.bootstrap_servers
    offsets = [TopicPartition(requests, 0, 3)]

    def broken() -> bool:
        raise RuntimeError("the check failed")

    with pytest.raises(RuntimeError, match="the check failed"):
        box.commit(
            consumer.consumer_group_metadata(),
            offsets,
            [OutboxRecord(answers, b"k", b"lost")],
            (),
            broken,
        )
    # Aborted at once: left open, it would hold every read_committed reader of the topic
    # back until the next commit, or the transaction's timeout.
    wait_for(lambda: not _open_transaction(bootstrap, answers), 10, "the transaction ended")
    box.commit(
        consumer.consumer_group_metadata(),
        offsets,
        [OutboxRecord(answers, b"k", b"kept")],
        (),
        lambda: True,
    )
    assert [value for _key, value, _h in read_topic(bootstrap, answers)] == [b"kept"]
    assert _committed(consumer, requests) == 3
