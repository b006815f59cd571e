"""Finding one key's record in a topic by reading only the partition the key hashes to."""

from __future__ import annotations

import time

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from computeinfra.kafka.clients import METADATA_TIMEOUT_SECONDS, partition_count, reader
from computeinfra.kafka.partitioner import partition_for

__all__ = ["find_last"]

POLL_SECONDS = 0.2
SCAN_TIMEOUT_SECONDS = 60.0


def find_last(bootstrap: str, topic: str, key: str) -> tuple[bytes, float] | None:
    """The value and timestamp (s) of the last record under ``key`` in ``topic``, if any."""
    consumer = reader(bootstrap, client_id="computeinfra-lookup")
    try:
        raw_key = key.encode()
        partition = partition_for(raw_key, partition_count(consumer, topic))
        tp = TopicPartition(topic, partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_SECONDS)
        if high <= low:
            return None
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        found: tuple[bytes, float] | None = None
        deadline = time.monotonic() + SCAN_TIMEOUT_SECONDS
        # Transaction markers take offsets but are never delivered, so progress is measured
        # by the consumer's position, not by the offsets of the messages seen.
        while consumer.position([tp])[0].offset < high and time.monotonic() < deadline:
            message = consumer.poll(POLL_SECONDS)
            if message is None or message.error():
                continue
            if message.key() == raw_key:
                found = (message.value() or b"", message.timestamp()[1] / 1000)
        return found
    finally:
        consumer.close()
