"""Where to read again from, and a guard that nothing is skipped.

Per partition: the records consumed and not yet answered in a committed transaction, in
order. When a batch is cut short or its transaction is fenced, the consumer is sought back
to the first of them. That seek can fail without a word while the group rebalances, and
with cooperative rebalancing the partition may stay ours: the consumer then goes on past
records that were never answered, and committing later answers would commit past them
(seen in test_scale_out: six jobs' offsets committed, their completions aborted). So after
a seek back, the next record of that partition must be the one sought; any other is not
taken, and the seek is made again. Offsets are not contiguous (transaction markers, aborted
records), so only a record known to exist is ever required.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping, Sequence

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from .transaction import next_offsets

__all__ = ["ReadPositions"]

Where = tuple[str, int]
COMMITTED_TIMEOUT_SECONDS = 10.0


def _where(message: Message) -> Where:
    return (message.topic() or "", message.partition() or 0)


class ReadPositions:
    def __init__(self) -> None:
        self._unanswered: dict[Where, deque[int]] = {}
        # After a seek back: the record each partition must deliver next, for the
        # assignment (epoch) it was sought under. Assigned anew, it starts from its
        # committed offset instead, wherever that is.
        self._expected: dict[Where, tuple[int, int]] = {}

    def admit(
        self, messages: Sequence[Message], epochs: Mapping[Where, int], consumer: Consumer
    ) -> list[Message]:
        """The records that may be taken; a partition that did not come back to the record
        it was sought to is sought again, and its records are left out."""
        taken: list[Message] = []
        behind: dict[Where, int] = {}
        for message in messages:
            where, offset = _where(message), message.offset() or 0
            if where in behind:
                continue
            epoch = epochs.get(where, 0)
            expected = self._expected.pop(where, None)
            if expected is not None and expected[0] != epoch:
                # Assigned anew while a record was owed: the consumer may resume from where
                # it had fetched, not from the committed offset (seen after a fenced commit
                # and a rejoin). Start again from the committed offset, once.
                start = _committed(consumer, where)
                if start is not None and offset > start:
                    behind[where] = start
                    self._expected[where] = (epoch, -1)  # whatever comes first after it
                    continue
            elif expected is not None and expected[1] >= 0 and offset != expected[1]:
                behind[where] = expected[1]
                self._expected[where] = expected  # still owed: seek again until it comes
                continue
            self._unanswered.setdefault(where, deque()).append(offset)
            taken.append(message)
        _seek(consumer, behind)
        return taken

    def committed(self, messages: Sequence[Message]) -> None:
        """Answers to ``messages`` (a prefix of each partition's records) were committed."""
        for offset in next_offsets(messages):
            pending = self._unanswered.get((offset.topic, offset.partition))
            while pending and pending[0] < offset.offset:
                pending.popleft()

    def rewind(self, consumer: Consumer, epochs: Mapping[Where, int]) -> None:
        """Seek back to every record without a committed answer, and require it next."""
        first = {where: pending[0] for where, pending in self._unanswered.items() if pending}
        _seek(consumer, first)
        for where, offset in first.items():
            self._expected[where] = (epochs.get(where, 0), offset)
        self._unanswered.clear()


def _committed(consumer: Consumer, where: Where) -> int | None:
    """The group's committed offset of ``where``, or None if it cannot be read now."""
    try:
        (found,) = consumer.committed([TopicPartition(*where)], timeout=COMMITTED_TIMEOUT_SECONDS)
    except KafkaException:
        return None
    return found.offset if found.offset >= 0 else None


def _seek(consumer: Consumer, offsets: Mapping[Where, int]) -> None:
    for (topic, partition), offset in offsets.items():
        # Not assigned here any more (its new owner starts from the committed offset), or
        # mid-rebalance: admit() then sees the wrong record come and seeks again.
        with contextlib.suppress(KafkaException):
            consumer.seek(TopicPartition(topic, partition, offset))
