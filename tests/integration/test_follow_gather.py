"""A follower that lets the broker gather records (``Fetching.GATHER``, the analyzer's)
still sees a lone record, and every record of a burst once, in order: the broker holds its
fetch for 64 KiB of news at most ``GATHER_WAIT_MS``, never until that much has come."""

from __future__ import annotations

import threading
import uuid

from confluent_kafka import Message
from confluent_kafka.admin import AdminClient, NewTopic

from computeinfra.kafka.clients import TopicMissing, make_producer, partition_count, reader
from computeinfra.kafka.fetching import Fetching
from computeinfra.kafka.follow import END, TopicFollower
from tests.helpers import Stack, wait_for

TIMEOUT = 60.0


def _exists(bootstrap: str, topic: str) -> bool:
    """Whether the broker lists ``topic`` yet (just after its creation it may not)."""
    client = reader(bootstrap)
    try:
        return partition_count(client, topic, 5.0) > 0
    except TopicMissing:
        return False
    finally:
        client.close()


def test_a_gathering_follower_sees_a_lone_record_and_a_burst_in_order(stack: Stack) -> None:
    bootstrap = stack.settings.bootstrap_servers
    topic = f"gatherTest-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)
    wait_for(lambda: _exists(bootstrap, topic), TIMEOUT, f"{topic} to be listed")
    seen: list[bytes] = []
    lock = threading.Lock()

    def handle(message: Message) -> None:
        with lock:
            seen.append(message.value() or b"")

    follower = TopicFollower(bootstrap, [topic], handle, start=END, fetching=Fetching.GATHER)
    producer = make_producer(bootstrap)
    try:
        follower.start(assign_now=True)
        producer.produce(topic, b"lone")
        producer.flush(30)
        wait_for(lambda: seen, TIMEOUT, "the lone record (a few bytes of 64 KiB)")
        burst = [f"{i:05d}".encode() * 100 for i in range(1_000)]  # 500 KB: a fetch or more
        for value in burst:
            producer.produce(topic, value)
        producer.flush(30)
        wait_for(lambda: len(seen) >= 1 + len(burst), TIMEOUT, "the burst")
        with lock:
            assert seen == [b"lone", *burst]
    finally:
        follower.stop()
        for future in admin.delete_topics([topic]).values():
            future.result(30)
