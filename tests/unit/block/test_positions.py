"""Nothing is skipped: after a fenced transaction the records without a committed answer are
read again, even when the seek back is lost in a rebalance that leaves the partition ours
(found in test_scale_out: six jobs' offsets committed, their completions aborted)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from computeinfra.block.positions import ReadPositions

WHERE = ("pendingJobs", 5)


class _Record:
    def __init__(self, offset: int, partition: int = 5) -> None:
        self._offset, self._partition = offset, partition

    def topic(self) -> str:
        return "pendingJobs"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class _Consumer:
    """Records seeks; ``lose_seeks`` drops them silently, as a rebalance can."""

    def __init__(self, lose_seeks: bool = False, committed: int = -1001) -> None:
        self.seeks: list[tuple[int, int]] = []
        self.lose_seeks = lose_seeks
        self.committed_offset = committed

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        return [TopicPartition(p.topic, p.partition, self.committed_offset) for p in partitions]

    def seek(self, tp: Any) -> None:
        if self.lose_seeks:
            raise KafkaException("Local: Erroneous state")
        self.seeks.append((tp.partition, tp.offset))


def _offsets(records: list[Any]) -> list[int]:
    return [r.offset() for r in records]


def test_a_lost_seek_back_never_lets_later_records_through() -> None:
    positions, epochs = ReadPositions(), {WHERE: 1}
    lossy = _Consumer(lose_seeks=True)
    batch = [_Record(o) for o in range(47, 52)]
    assert _offsets(positions.admit(batch, epochs, lossy)) == list(range(47, 52))
    positions.rewind(lossy, epochs)  # the transaction was fenced; the seek to 47 is lost
    consumer = _Consumer()
    # The partition stayed ours and the consumer went on from 52: not taken, sought again.
    taken = positions.admit([_Record(52), _Record(53), _Record(0, partition=6)], epochs, consumer)
    assert _offsets(taken) == [0]  # partition 6's first record is fine
    assert consumer.seeks == [(5, 47)]
    again = positions.admit([_Record(o) for o in range(47, 50)], epochs, consumer)
    assert _offsets(again) == [47, 48, 49]


def test_a_partition_assigned_anew_starts_from_its_committed_offset() -> None:
    positions, lossy = ReadPositions(), _Consumer(lose_seeks=True)
    positions.admit([_Record(o) for o in range(1, 10)], {WHERE: 1}, lossy)
    positions.rewind(lossy, {WHERE: 1})  # fenced; then revoked and given back (epoch 3)
    # Another block answered up to 40 meanwhile: the committed offset is where to go on.
    elsewhere = _Consumer(committed=40)
    assert _offsets(positions.admit([_Record(40)], {WHERE: 3}, elsewhere)) == [40]
    assert elsewhere.seeks == []


def test_a_partition_given_back_mid_fetch_goes_back_to_its_committed_offset() -> None:
    """Seen in test_scale_out: after a fenced commit and a rejoin, the consumer resumed the
    partition from where it had fetched (10), past nine unanswered records."""
    positions, lossy = ReadPositions(), _Consumer(lose_seeks=True)
    positions.admit([_Record(o) for o in range(1, 10)], {WHERE: 1}, lossy)
    positions.rewind(lossy, {WHERE: 1})
    consumer = _Consumer(committed=1)
    assert positions.admit([_Record(10), _Record(11)], {WHERE: 3}, consumer) == []
    assert consumer.seeks == [(5, 1)]
    assert _offsets(positions.admit([_Record(1), _Record(2)], {WHERE: 3}, consumer)) == [1, 2]


def test_offsets_with_gaps_are_taken_as_they_come() -> None:
    """Transaction markers and aborted records leave gaps (lane topics are written in
    transactions): only a record known to exist is ever required."""
    positions, consumer, epochs = ReadPositions(), _Consumer(), {WHERE: 1}
    assert _offsets(positions.admit([_Record(10), _Record(12)], epochs, consumer)) == [10, 12]
    positions.committed([_Record(10)])  # 11 is a commit marker: 12 is the first unanswered
    positions.rewind(consumer, epochs)
    assert consumer.seeks == [(5, 12)]
    assert _offsets(positions.admit([_Record(12), _Record(15)], epochs, consumer)) == [12, 15]
    assert consumer.seeks == [(5, 12)]
