"""Where to read again from: per partition, the first consumed record without a committed
answer. Used when a batch is cut short or its transaction is fenced."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from .transaction import next_offsets

__all__ = ["ReadPositions"]

Where = tuple[str, int]


class ReadPositions:
    def __init__(self) -> None:
        self._unanswered: dict[Where, int] = {}
        self._consumed_next: dict[Where, int] = {}

    def consumed(self, messages: Sequence[Message]) -> None:
        for message in messages:
            where = (message.topic() or "", message.partition() or 0)
            self._unanswered.setdefault(where, message.offset() or 0)
            self._consumed_next[where] = (message.offset() or 0) + 1

    def committed(self, messages: Sequence[Message]) -> None:
        """Answers to ``messages`` (a prefix of each partition's records) were committed."""
        for offset in next_offsets(messages):
            where = (offset.topic, offset.partition)
            if self._consumed_next.get(where, 0) > offset.offset:
                self._unanswered[where] = offset.offset
            else:
                self._unanswered.pop(where, None)

    def rewind(self, consumer: Consumer) -> None:
        """Seek back to every record without a committed answer, where still assigned."""
        for (topic, partition), offset in self._unanswered.items():
            # Not assigned here any more: its new owner starts from the committed offset.
            with contextlib.suppress(KafkaException):
                consumer.seek(TopicPartition(topic, partition, offset))
        self._unanswered.clear()
        self._consumed_next.clear()
