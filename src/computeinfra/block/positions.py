"""Where to read again from, and a guard that nothing is skipped.

Per partition: the first consumed record without a committed answer (read again when a
batch is cut short or its transaction is fenced), and the offset the next record must have.
A seek back can fail without a word while the group rebalances, and with cooperative
rebalancing the partition may stay ours: the consumer then delivers records past the ones
that were never answered, and committing their answers would commit past those records.
So a record that is not the one expected is not taken; the partition is sought back again,
until the expected record comes (measured in test_scale_out: six jobs lost that way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from .transaction import next_offsets

__all__ = ["ReadPositions"]

Where = tuple[str, int]


def _where(message: Message) -> Where:
    return (message.topic() or "", message.partition() or 0)


class ReadPositions:
    def __init__(self) -> None:
        self._unanswered: dict[Where, int] = {}
        self._consumed_next: dict[Where, int] = {}
        # The next offset each partition must deliver, for the assignment (epoch) it was
        # set under: a partition assigned anew starts from its committed offset instead.
        self._expected: dict[Where, tuple[int, int]] = {}

    def admit(
        self, messages: Sequence[Message], epochs: Mapping[Where, int], consumer: Consumer
    ) -> list[Message]:
        """The records that follow on from what was read before; a partition whose record
        is not the expected one is sought back to it, and its records are left out."""
        taken: list[Message] = []
        behind: dict[Where, int] = {}
        for message in messages:
            where, offset = _where(message), message.offset() or 0
            if where in behind:
                continue
            epoch = epochs.get(where, 0)
            expected = self._expected.get(where)
            if expected is not None and expected[0] == epoch and offset != expected[1]:
                behind[where] = expected[1]
                continue
            self._expected[where] = (epoch, offset + 1)
            self._unanswered.setdefault(where, offset)
            self._consumed_next[where] = offset + 1
            taken.append(message)
        _seek(consumer, behind)
        return taken

    def committed(self, messages: Sequence[Message]) -> None:
        """Answers to ``messages`` (a prefix of each partition's records) were committed."""
        for offset in next_offsets(messages):
            where = (offset.topic, offset.partition)
            if self._consumed_next.get(where, 0) > offset.offset:
                self._unanswered[where] = offset.offset
            else:
                self._unanswered.pop(where, None)

    def rewind(self, consumer: Consumer) -> None:
        """Seek back to every record without a committed answer, and expect it next."""
        _seek(consumer, self._unanswered)
        for where, offset in self._unanswered.items():
            if where in self._expected:
                self._expected[where] = (self._expected[where][0], offset)
        self._unanswered.clear()
        self._consumed_next.clear()


def _seek(consumer: Consumer, offsets: Mapping[Where, int]) -> None:
    for (topic, partition), offset in offsets.items():
        # Not assigned here any more (its new owner starts from the committed offset), or
        # mid-rebalance: then the next record of it is not the expected one, and admit()
        # seeks again.
        with contextlib.suppress(KafkaException):
            consumer.seek(TopicPartition(topic, partition, offset))
