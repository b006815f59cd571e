"""Out-of-order answers commit exactly once: each partition's offset stops at its oldest
unanswered record, the answers beyond it travel in the metadata, and a new owner skips
exactly those. And nothing is skipped when a partition assigned anew does not resume at
its committed offset (found in test_scale_out: jobs committed past, completions aborted)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from computeinfra.block import offset_map
from computeinfra.block.positions import Positions

TOPIC = "pendingJobs"
WHERE = (TOPIC, 5)


class _Record:
    def __init__(self, offset: int, partition: int = 5) -> None:
        self._offset, self._partition = offset, partition

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class _Consumer:
    """Committed offsets as a broker keeps them; records seeks; ``lose_seeks`` drops them
    silently, as a rebalance can."""

    def __init__(self, committed: int = -1001, metadata: str = "") -> None:
        self.seeks: list[tuple[int, int]] = []
        self.lose_seeks = False
        self.offsets = {5: (committed, metadata), 6: (-1001, "")}

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        return [
            TopicPartition(p.topic, p.partition, *self.offsets[p.partition]) for p in partitions
        ]

    def seek(self, tp: Any) -> None:
        if self.lose_seeks:
            raise KafkaException("Local: Erroneous state")
        self.seeks.append((tp.partition, tp.offset))

    def commit(self, plan: Any) -> None:
        for tp in plan.offsets:
            self.offsets[tp.partition] = (tp.offset, tp.metadata)


def _offsets(records: list[Any]) -> list[int]:
    return [r.offset() for r in records]


def _records(*offsets: int) -> list[_Record]:
    return [_Record(o) for o in offsets]


def test_out_of_order_answers_commit_up_to_the_oldest_unanswered_with_the_rest_in_metadata() -> (
    None
):
    positions, consumer, epochs = Positions(), _Consumer(committed=10), {WHERE: 1}
    assert _offsets(positions.admit(_records(10, 11, 12, 13), epochs, consumer)) == [10, 11, 12, 13]
    for offset in (11, 13):  # 10 is a long job; 12 still runs
        assert positions.answer(WHERE, offset)
    plan = positions.plan()
    assert [(tp.offset, tp.metadata) for tp in plan.offsets] == [(10, "ci1:1,3")]
    assert plan.answers == [(WHERE, 11), (WHERE, 13)]
    positions.committed(plan)
    consumer.commit(plan)
    positions.answer(WHERE, 10)
    positions.committed(plan := positions.plan())
    assert [(tp.offset, tp.metadata) for tp in plan.offsets] == [(12, "ci1:1")]


def test_a_new_owner_skips_exactly_the_answered_records() -> None:
    consumer = _Consumer(committed=10, metadata="ci1:1,3")  # 11 and 13 answered
    positions, epochs = Positions(), {WHERE: 1}
    taken = positions.admit(_records(10, 11, 12, 13, 14), epochs, consumer)
    assert _offsets(taken) == [10, 12, 14]
    for offset in (10, 12, 14):
        positions.answer(WHERE, offset)
    (tp,) = positions.plan().offsets
    assert (tp.offset, tp.metadata) == (15, "")


def test_a_partition_assigned_anew_goes_back_to_its_committed_offset() -> None:
    consumer = _Consumer(committed=47)
    positions = Positions()
    # The consumer resumed from where it had fetched (52), past five records never answered.
    assert positions.admit(_records(52, 53), {WHERE: 2}, consumer) == []
    assert consumer.seeks == [(5, 47)]
    # The seek is lost in a rebalance: the next record is still past the one seen too
    # early, so it is not taken either, and the seek is made again.
    assert positions.admit(_records(54), {WHERE: 2}, consumer) == []
    assert consumer.seeks == [(5, 47), (5, 47)]
    assert _offsets(positions.admit(_records(47, 48), {WHERE: 2}, consumer)) == [47, 48]


def test_a_gap_at_the_committed_offset_is_crossed_once_the_seek_shows_it() -> None:
    # 47 is a transaction marker: after the seek back, 52 comes again, and is taken.
    consumer = _Consumer(committed=47)
    positions = Positions()
    assert positions.admit(_records(52), {WHERE: 1}, consumer) == []
    assert _offsets(positions.admit(_records(52, 53), {WHERE: 1}, consumer)) == [52, 53]


def test_revoked_partitions_are_closed_and_their_answers_are_not_committed() -> None:
    consumer = _Consumer(committed=0)
    positions = Positions()
    positions.admit(_records(0, 1), {WHERE: 1}, consumer)
    positions.answer(WHERE, 1)
    closed = positions.close({})
    assert set(closed) == {WHERE}
    assert closed[WHERE].pending == {0} and closed[WHERE].answered == {1}
    assert positions.plan().answers == []
    assert not positions.answer(WHERE, 0)


def test_a_committed_offset_that_cannot_be_read_takes_nothing() -> None:
    class Unreadable(_Consumer):
        def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
            raise KafkaException("Local: Timed out")

    consumer = Unreadable()
    positions = Positions()
    assert positions.admit(_records(3, 4), {WHERE: 1}, consumer) == []
    assert consumer.seeks == [(5, 3)]  # read again once it can be read


def test_answers_beyond_the_map_limit_wait_for_a_later_commit() -> None:
    positions, consumer, epochs = Positions(), _Consumer(committed=0), {WHERE: 1}
    count = 3000
    positions.admit(_records(*range(count)), epochs, consumer)
    for offset in range(2, count, 2):  # every other record: the map cannot merge runs
        positions.answer(WHERE, offset)
    plan = positions.plan()
    (tp,) = plan.offsets
    assert len(tp.metadata) <= offset_map.MAX_METADATA_CHARS
    assert 0 < len(plan.answers) < count // 2 - 1
    assert WHERE in positions.crowded()
    positions.committed(plan)
    assert positions.plan().answers == []  # nothing more fits until the oldest is answered


@given(st.integers(0, 10**12), st.sets(st.integers(1, 5000), max_size=300))
def test_the_offset_map_round_trips(committed: int, relative: set[int]) -> None:
    answered = {committed + r for r in relative}
    assert offset_map.decode(committed, offset_map.encode(committed, answered)) == answered


@given(st.sets(st.integers(1, 100_000), max_size=2000), st.integers(20, 400))
def test_the_fitting_part_of_a_map_fits_and_is_a_prefix(relative: set[int], limit: int) -> None:
    kept = offset_map.fitting(0, relative, limit)
    assert len(offset_map.encode(0, kept)) <= limit
    assert kept == {o for o in relative if o <= max(kept, default=0)}


def test_metadata_not_ours_means_nothing_is_known_answered() -> None:
    assert offset_map.decode(10, "written by another tool") == set()
    assert offset_map.decode(10, "ci1:garbage") == set()
    assert offset_map.decode(10, None) == set()


def test_a_new_owner_that_has_read_up_to_an_answered_record_keeps_it_answered() -> None:
    """Found by the chaos run (handing over at once, 20 kills): the previous owner answered
    12 and 13 beyond its committed 10; the new owner answers 10 and 11 and commits before
    its consumer delivers 12. Its commit must not be "12, nothing beyond": that says 12 is
    unanswered, and the next owner runs it again (a second completion)."""
    positions, consumer, epochs = Positions(), _Consumer(10, "ci1:2-3"), {WHERE: 1}
    assert _offsets(positions.admit(_records(10, 11), epochs, consumer)) == [10, 11]
    for offset in (10, 11):
        assert positions.answer(WHERE, offset)
    plan = positions.plan()
    positions.committed(plan)
    consumer.commit(plan)
    (tp,) = plan.offsets
    answered = set(range(10, tp.offset)) | offset_map.decode(tp.offset, tp.metadata)
    assert {10, 11, 12, 13} <= answered
    later = Positions()
    assert _offsets(later.admit(_records(12, 13, 14), {WHERE: 2}, consumer)) == [14]


@given(st.lists(st.tuples(st.integers(0, 6), st.sets(st.integers(0, 5))), min_size=1, max_size=8))
def test_owners_one_after_another_answer_each_record_exactly_once(
    rounds: list[tuple[int, set[int]]],
) -> None:
    """Each owner reads a few records from the committed offset on, answers some of them
    (``picked``, relative to where it started), and commits; a last owner answers whatever
    is left. Every record is answered exactly once, however the owners' reads fall."""
    count, consumer, answers = 12, _Consumer(committed=0), [0] * 12
    for read, picked in rounds:
        positions, start = Positions(), consumer.offsets[5][0]
        records = _records(*range(start, min(start + read, count)))
        for offset in _offsets(positions.admit(records, {WHERE: 1}, consumer)):
            if offset - start in picked:
                assert positions.answer(WHERE, offset)
                answers[offset] += 1
        plan = positions.plan()
        positions.committed(plan)
        consumer.commit(plan)
    last, start = Positions(), consumer.offsets[5][0]
    for offset in _offsets(last.admit(_records(*range(start, count)), {WHERE: 1}, consumer)):
        answers[offset] += 1
    assert answers == [1] * count


def test_records_before_the_partition_end_at_assignment_may_have_been_read_before() -> None:
    positions = Positions()
    ends = {(TOPIC, 5): 4}  # a previous owner may have read up to here
    positions.admit([_Record(2)], {(TOPIC, 5): 1}, _Consumer(committed=2), ends)  # type: ignore[arg-type]
    assert positions.inherited((TOPIC, 5), 3)
    assert not positions.inherited((TOPIC, 5), 4)  # appended since: read here first
    assert positions.inherited((TOPIC, 6), 9)  # a partition not held: nothing is known


def test_an_unknown_partition_end_counts_every_record_as_read_before() -> None:
    positions = Positions()
    positions.admit([_Record(2)], {(TOPIC, 5): 1}, _Consumer(committed=2), {})  # type: ignore[arg-type]
    assert positions.inherited((TOPIC, 5), 10**9)
