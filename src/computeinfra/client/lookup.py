"""Finding one key's record in a topic by reading only the partition the key hashes to."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from computeinfra.kafka.clients import METADATA_TIMEOUT_SECONDS, partition_count, reader
from computeinfra.kafka.partitioner import partition_for

__all__ = ["find_last"]

POLL_SECONDS = 0.5
MAX_EMPTY_POLLS = 3


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
        position, empty_polls = low - 1, 0
        # read_committed may stop short of the high watermark (transaction markers, open
        # transactions), so a few empty polls in a row also end the scan.
        while position < high - 1 and empty_polls < MAX_EMPTY_POLLS:
            message = consumer.poll(POLL_SECONDS)
            if message is None or message.error():
                empty_polls += 1
                continue
            empty_polls = 0
            offset = message.offset()
            position = offset if offset is not None else position
            if message.key() == raw_key:
                found = (message.value() or b"", message.timestamp()[1] / 1000)
        return found
    finally:
        consumer.close()
