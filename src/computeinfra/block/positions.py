"""Per partition: which records are taken, answered and committed, and what to commit next.

Jobs finish in any order. Each partition's commit is its oldest unanswered record's offset,
with the records answered beyond it listed in the commit's metadata (``offset_map.py``); a
partition assigned anew starts from what its last owner committed, and skips exactly the
records that metadata lists.

A guard that nothing is skipped. After a partition is assigned anew, librdkafka may resume
from where it had fetched rather than from the committed offset (seen in test_scale_out:
jobs committed past, their completions aborted). So the first record of a new assignment
must be the committed one; if a later one comes, the consumer is sought back to the
committed offset, and the next record must be at or before the one that came too early
(offsets are not contiguous: transaction markers and aborted records leave gaps, so only a
record known to exist is ever required). A seek that is lost in a rebalance is made again.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from . import offset_map

__all__ = ["CommitPlan", "Positions", "Track", "Where", "where_of"]

Where = tuple[str, int]
COMMITTED_TIMEOUT_SECONDS = 10.0
# A partition whose map of answered offsets passes this share of the limit takes no more
# records until its oldest job ends: the map must always fit in the commit.
CROWDED_SHARE = 0.5


def where_of(message: Message) -> Where:
    return (message.topic() or "", message.partition() or 0)


@dataclass
class Track:
    """One partition under one assignment (``epoch``)."""

    epoch: int
    committed: int  # the offset as last committed, by us or by whoever owned it before
    seen: int = 0  # one past the highest offset delivered under this assignment
    pending: set[int] = field(default_factory=set)  # taken, not answered
    answered: set[int] = field(default_factory=set)  # answer in hand, not committed
    done: set[int] = field(default_factory=set)  # answered and committed, beyond ``committed``
    guard: int | None = None  # after a seek back: the next record must not be past this
    # The partition's end when it was assigned: records from here on were appended after,
    # and no one else has read them. Those before may have been started by a previous owner.
    fresh: int = 0

    def low(self) -> int:
        """The offset to commit: the oldest record not answered, or past all seen and past
        the answered ones right after (a previous owner's, not yet read here). The map
        lists only offsets *beyond* the committed one, so committing an answered offset
        would say it is unanswered: its record would run again."""
        if self.pending:
            return min(self.pending)
        low = self.seen
        while low in self.done:
            low += 1
        return low

    def beyond(self, low: int) -> set[int]:
        return {o for o in self.done | self.answered if o > low}

    def crowded(self) -> bool:
        limit = offset_map.MAX_METADATA_CHARS * CROWDED_SHARE
        return len(offset_map.encode(self.low(), self.beyond(self.low()))) > limit


@dataclass(frozen=True)
class CommitPlan:
    """Offsets to commit (with their maps) and the answers they cover."""

    offsets: list[TopicPartition]
    answers: list[tuple[Where, int]]
    epochs: dict[Where, int]


class Positions:
    def __init__(self) -> None:
        self.tracks: dict[Where, Track] = {}

    # -- intake --------------------------------------------------------------------------------

    def admit(
        self,
        messages: Sequence[Message],
        epochs: Mapping[Where, int],
        consumer: Consumer,
        ends: Mapping[Where, int] | None = None,
    ) -> list[Message]:
        """The records to take; skipped are those already answered, and those of a
        partition that did not resume where it must (it is sought back). ``ends``: each
        partition's end when it was assigned (``membership.py``)."""
        seeks = self._open(messages, epochs, consumer, ends or {})
        taken: list[Message] = []
        for message in messages:
            where, offset = where_of(message), message.offset() or 0
            track = self.tracks.get(where)
            if track is None or where in seeks:
                continue  # not taken now: read again from where it is sought
            resume = self._misplaced(track, offset)
            if resume is not None:
                seeks[where] = resume
            elif offset >= track.seen:
                track.seen = offset + 1
                if offset not in track.done and offset >= track.committed:
                    track.pending.add(offset)
                    taken.append(message)
        _seek(consumer, seeks)
        return taken

    def _misplaced(self, track: Track, offset: int) -> int | None:
        """Where to seek back to if ``offset`` must not be taken yet, else None."""
        if track.guard is not None:
            if offset > track.guard:
                return track.seen  # the seek back was lost: make it again
            track.guard = None
        elif track.seen == track.committed and offset > track.committed:
            # The first record of a new assignment is past the committed offset.
            track.guard = offset
            return track.committed
        return None

    def _open(
        self,
        messages: Sequence[Message],
        epochs: Mapping[Where, int],
        consumer: Consumer,
        ends: Mapping[Where, int],
    ) -> dict[Where, int]:
        """Open a track for each partition first seen under its current assignment; returns
        where to seek the partitions whose committed offset could not be read (their
        records are read again, never taken without knowing what is answered)."""
        firsts: dict[Where, int] = {}
        for message in messages:
            where = where_of(message)
            track = self.tracks.get(where)
            if (track is None or track.epoch != epochs.get(where, 0)) and where not in firsts:
                firsts[where] = message.offset() or 0
        found = _committed(consumer, sorted(firsts)) if firsts else {}
        for where in firsts:
            self.tracks.pop(where, None)
            if where in found:
                offset, metadata = found[where]
                done = offset_map.decode(offset, metadata)
                fresh = ends.get(where, sys.maxsize)  # unknown: any may have been read
                self.tracks[where] = Track(
                    epochs.get(where, 0), offset, seen=offset, done=done, fresh=fresh
                )
        return {where: offset for where, offset in firsts.items() if where not in found}

    def inherited(self, where: Where, offset: int) -> bool:
        """Whether the record at ``offset`` may have been read before this assignment."""
        track = self.tracks.get(where)
        return track is None or offset < track.fresh

    # -- answers and commits -------------------------------------------------------------------

    def answer(self, where: Where, offset: int) -> bool:
        """Record an answer; False if the record is not pending here (its partition moved)."""
        track = self.tracks.get(where)
        if track is None or offset not in track.pending:
            return False
        track.pending.discard(offset)
        track.answered.add(offset)
        return True

    def plan(self) -> CommitPlan:
        """The offsets to commit with every answer that fits in its partition's map."""
        offsets: list[TopicPartition] = []
        answers: list[tuple[Where, int]] = []
        epochs: dict[Where, int] = {}
        for where, track in self.tracks.items():
            if not track.answered:
                continue
            low = track.low()
            included = _fitting(track, low)
            if not included:
                continue
            done = {o for o in track.done | included if o > low}
            metadata = offset_map.encode(low, done)
            offsets.append(TopicPartition(where[0], where[1], low, metadata=metadata))
            answers.extend((where, o) for o in sorted(included))
            epochs[where] = track.epoch
        return CommitPlan(offsets, answers, epochs)

    def committed(self, plan: CommitPlan) -> None:
        """``plan`` was committed."""
        for tp in plan.offsets:
            where = (tp.topic, tp.partition)
            track = self.tracks.get(where)
            if track is None or track.epoch != plan.epochs[where]:
                continue
            included = {o for w, o in plan.answers if w == where}
            track.answered -= included
            track.done = {o for o in track.done | included if o > tp.offset}
            track.committed = tp.offset

    def close(self, keep: Mapping[Where, int]) -> dict[Where, Track]:
        """Drop every track not in ``keep`` under the same epoch (revoked or assigned
        anew); returns them, so their jobs can be let go."""
        closed = {w: t for w, t in self.tracks.items() if keep.get(w) != t.epoch}
        for where in closed:
            del self.tracks[where]
        return closed

    def crowded(self) -> set[Where]:
        return {where for where, track in self.tracks.items() if track.crowded()}


def _fitting(track: Track, low: int) -> set[int]:
    """The answered offsets this commit covers: all below ``low``, and those beyond it
    while the map (which must keep every committed one) fits."""
    below = {o for o in track.answered if o < low}
    above = sorted(o for o in track.answered if o > low)
    done = {o for o in track.done if o > low}
    if len(offset_map.encode(low, done | set(above))) <= offset_map.MAX_METADATA_CHARS:
        return below | set(above)
    kept: set[int] = set()
    for offset in above:
        if len(offset_map.encode(low, done | kept | {offset})) > offset_map.MAX_METADATA_CHARS:
            break
        kept.add(offset)
    return below | kept


def _committed(consumer: Consumer, wheres: list[Where]) -> dict[Where, tuple[int, str | None]]:
    """The group's committed offset and metadata of each partition that can be read now
    (a partition never committed starts from its beginning: offset 0)."""
    try:
        found = consumer.committed(
            [TopicPartition(t, p) for t, p in wheres], timeout=COMMITTED_TIMEOUT_SECONDS
        )
    except KafkaException:
        return {}
    result = {}
    for tp in found:
        if tp.error is None:
            offset = tp.offset if tp.offset >= 0 else 0
            result[(tp.topic, tp.partition)] = (offset, tp.metadata)
    return result


def _seek(consumer: Consumer, offsets: Mapping[Where, int]) -> None:
    for (topic, partition), offset in offsets.items():
        # Not assigned here any more (its new owner starts from the committed offset), or
        # mid-rebalance: admit() then sees the wrong record come and seeks again.
        with contextlib.suppress(KafkaException):
            consumer.seek(TopicPartition(topic, partition, offset))
