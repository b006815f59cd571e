"""What a transaction carries (``OutboxRecord``), and how a commit can end without
committing: shared by the outbox (``transaction.py``), which raises these, the code that
cuts transactions (``commits.py``, ``refusals.py``), and all that makes records for one
(answers, slots, handover, middleware), none of which needs the producer's module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["OutboxRecord", "PartitionLost", "RecordsRefused", "Withdrawn"]


class PartitionLost(Exception):
    """The answer was not committed because the partition belongs to someone else now."""


class Withdrawn(Exception):
    """The check made before committing said no: the transaction was aborted, nothing
    committed (``Outbox.commit``'s ``check``)."""


class RecordsRefused(Exception):
    """Kafka refused some records for good; nothing was committed. ``refused``: why, by
    the record's index in the transaction; ``alone``: the indexes sent in a request of
    their own (a refusal of one of those is its own, not its batch's)."""

    def __init__(self, refused: dict[int, str], alone: frozenset[int] = frozenset()) -> None:
        super().__init__(f"{len(refused)} record(s) refused: {sorted(set(refused.values()))}")
        self.refused = refused
        self.alone = alone


@dataclass(frozen=True)
class OutboxRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)
    partition: int | None = None  # None: by key, as Kafka's default partitioner places it
    # The record's time (ms); 0: now. A request passed on keeps its own, which is its
    # submission time when it names none (cancels name the submission they cancel).
    timestamp_ms: int = 0
