"""Jobs waiting out their retry policy's delay, without holding anything else back."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

from .slots import Slot

__all__ = ["Retries"]


class Retries:
    """A heap of slots by the monotonic time their next attempt may be queued."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Slot]] = []
        self._sequence = itertools.count()  # ties keep their order; slots never compare

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, slot: Slot, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._sequence), slot))

    def wait(self) -> float | None:
        """Seconds until the next one is due, or None if none waits."""
        return max(self._heap[0][0] - time.monotonic(), 0.0) if self._heap else None

    def due(self) -> list[Slot]:
        """Remove and return the slots whose delay is over and that are still in hand."""
        now, found = time.monotonic(), []
        while self._heap and self._heap[0][0] <= now:
            slot = heapq.heappop(self._heap)[2]
            if not slot.released:
                found.append(slot)
        return found

    def take_if(self, wanted: Callable[[Slot], bool]) -> list[Slot]:
        """Remove and return the slots waiting that are ``wanted``."""
        found = [entry[2] for entry in self._heap if wanted(entry[2])]
        if found:
            self._heap = [entry for entry in self._heap if not wanted(entry[2])]
            heapq.heapify(self._heap)
        return found

    def clear(self) -> list[Slot]:
        """Remove and return every slot waiting."""
        slots = [entry[2] for entry in self._heap]
        self._heap.clear()
        return slots
