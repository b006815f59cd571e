"""A partition revoked while paused and given back comes back paused: librdkafka keeps the
pause across the revoke. The supervisor's record of what it paused said otherwise, so such
a partition was never resumed and its jobs waited for ever (a block idle, its partition's
lag not moving: seen in test_scale_out after a session timeout under load). On a broker
of its own, with two members of a private group: no stack, no Ray."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from computeinfra.block.membership import GroupMember
from computeinfra.block.transaction import Outbox, PartitionLost
from computeinfra.config import Settings
from computeinfra.kafka.clients import make_producer
from computeinfra.testing.stack import running_broker, settings_under
from tests.helpers import wait_for

TOPIC = "pauseTest"
TIMEOUT = 60.0


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    with running_broker(tmp_path) as broker:
        admin = AdminClient({"bootstrap.servers": broker.config.bootstrap})
        for future in admin.create_topics([NewTopic(TOPIC, 2, 1)]).values():
            future.result(30)
        found = settings_under({"COMPUTEINFRA_BOOTSTRAP": broker.config.bootstrap})
        yield replace(found, group=f"pause-{uuid.uuid4().hex[:8]}")


def _serve(*members: GroupMember) -> list[bytes]:
    """One poll of each (the group protocol runs in it); the values read."""
    return [m.value() or b"" for member in members for m in member.records(100, 0.1)]


def test_a_partition_given_back_while_paused_is_resumed(settings: Settings) -> None:
    first = GroupMember(settings, "first", [TOPIC])
    second: GroupMember | None = None
    try:
        wait_for(lambda: _serve(first) is not None and len(first.assigned) == 2, TIMEOUT,
                 "the first member to hold both partitions")  # fmt: skip
        first.pause_only(set(first.assigned))  # as a block with a full queue does
        second = GroupMember(settings, "second", [TOPIC])
        wait_for(lambda: _serve(first, second) is not None and len(first.assigned) == 1,
                 TIMEOUT, "a partition to move to the second member")  # fmt: skip
        second.close()  # a static member leaves no word: its session times out
        second = None
        wait_for(lambda: _serve(first) is not None and len(first.assigned) == 2, TIMEOUT,
                 "the partition to come back")  # fmt: skip

        first.pause_only(set())  # the queue drained: everything is to be read again
        producer = make_producer(settings.bootstrap_servers)
        for partition in (0, 1):
            producer.produce(TOPIC, f"to-{partition}".encode(), partition=partition)
        assert producer.flush(30) == 0
        seen: set[bytes] = set()
        wait_for(lambda: seen.update(_serve(first)) or seen >= {b"to-0", b"to-1"}, TIMEOUT,
                 "a record from each partition")  # fmt: skip
    finally:
        for member in (first, second):
            if member is not None:
                member.close()


def test_resuming_reads_on_from_where_it_stood(settings: Settings) -> None:
    """Resuming seeks each partition to where it stands, to wake librdkafka's fetcher
    (``GroupMember._fetch_now``): every record is still read once, in order, across
    pauses, a pause and resume with nothing read in between included."""
    count = 1000
    producer = make_producer(settings.bootstrap_servers)
    for i in range(count):
        producer.produce(TOPIC, str(i).encode(), partition=0)
    assert producer.flush(30) == 0
    member = GroupMember(settings, "reader", [TOPIC])
    seen: list[int] = []

    def read_more() -> bool:
        before = len(seen)
        seen.extend(int(value) for value in _serve(member))
        return len(seen) > before

    try:
        for _ in range(4):  # read some, pause while polling, resume: as a block's backlog
            wait_for(read_more, TIMEOUT, "records to read")
            for _twice in range(2):  # the second time, with nothing read since the first
                member.pause_only(set(member.assigned))
                assert not _serve(member)  # paused: nothing more
                member.pause_only(set())
        wait_for(lambda: (read_more(), len(seen) >= count)[1], TIMEOUT, "every record")
        assert seen == list(range(count))
        assert member.paused == set()
    finally:
        member.close()


def test_the_group_metadata_kept_between_commits_is_taken_again_at_a_rebalance(
    settings: Settings,
) -> None:
    """A member keeps its group metadata between commits (``GroupMember.group_metadata``)
    and takes it again when a rebalance ends: a commit after a second member joined is not
    fenced, while one with the metadata kept from before is."""
    first = GroupMember(settings, "first", [TOPIC])
    second: GroupMember | None = None
    outbox = Outbox(settings.bootstrap_servers, f"metadata-{uuid.uuid4().hex[:8]}")
    try:
        wait_for(lambda: _serve(first) is not None and len(first.assigned) == 2, TIMEOUT,
                 "the first member to hold both partitions")  # fmt: skip
        before = first.group_metadata()
        assert first.group_metadata() is before  # kept: no round trip to librdkafka
        second = GroupMember(settings, "second", [TOPIC])
        joined = second

        def moved() -> bool:  # both rebalances ended: the revoke, then the assign
            _serve(first, joined)
            return len(first.assigned) == 1 and len(joined.assigned) == 1

        wait_for(moved, TIMEOUT, "a partition to move to the second member")
        assert first.group_metadata() is not before  # taken again at the rebalance
        ((topic, partition),) = first.assigned
        offsets = [TopicPartition(topic, partition, 0)]
        with pytest.raises(PartitionLost):  # the generation moved on
            outbox.commit(before, offsets, [])
        outbox.commit(first.group_metadata(), offsets, [])
        (committed,) = first.consumer.committed([TopicPartition(topic, partition)], timeout=30)
        assert committed.offset == 0
    finally:
        outbox.close()
        for member in (first, second):
            if member is not None:
                member.close()
