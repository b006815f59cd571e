"""Jobs let go: kept for a while, so that a job still running is taken up again, not run
twice, when its record comes back to this block.

A block lets go of what it holds when a partition is revoked or assigned anew, or when its
consume round ends (a dead consumer, a crashed consume thread). The jobs keep running on the
workers. The record often comes straight back (a static member rejoins, a rebalance hands
the partition back): the job, and its answer if it has one, are then adopted. Past
``ORPHAN_SECONDS`` an orphan is dropped; the partition's owner runs the job.
"""

from __future__ import annotations

import time

from .positions import Where
from .slots import Slot

__all__ = ["ORPHAN_SECONDS", "Key", "Orphans"]

Key = tuple[Where, int]
ORPHAN_SECONDS = 60.0


class Orphans:
    def __init__(self, keep_seconds: float = ORPHAN_SECONDS) -> None:
        self._keep = keep_seconds
        self._held: dict[Key, tuple[Slot, float]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def add(self, key: Key, slot: Slot) -> None:
        self._held[key] = (slot, time.monotonic())

    def adopt(self, key: Key) -> Slot | None:
        """The orphan whose record is ``key``, taken out; None if there is none."""
        found = self._held.pop(key, None)
        return found[0] if found is not None else None

    def expired(self) -> list[Slot]:
        """The orphans kept too long, taken out."""
        limit = time.monotonic() - self._keep
        old = [key for key, (_, since) in self._held.items() if since < limit]
        return [self._held.pop(key)[0] for key in old]
