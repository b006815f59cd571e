"""Bounded-memory statistics: quantile sketches and a sliding-window rate.

The analyzer sees every job forever, so nothing here keeps per-job data. ``QuantileSketch``
is a DDSketch-style log-bucketed histogram: each quantile it reports is within
``relative_accuracy`` of the true value, and its size grows with the log of the value range,
not with the number of samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["QuantileSketch", "SlidingRate"]

DEFAULT_RELATIVE_ACCURACY = 0.01
# Durations under a microsecond are all "zero" for our purposes; keeps the bucket range finite.
MIN_TRACKED_VALUE = 1e-6


class QuantileSketch:
    """Quantiles of non-negative values within a relative error, in O(log(range)) memory."""

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be between 0 and 1")
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        if value < 0 or math.isnan(value):
            raise ValueError(f"QuantileSketch takes non-negative numbers, got {value}")
        self.count += 1
        self.total += value
        self.max = max(self.max, value)
        if value < MIN_TRACKED_VALUE:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[index] = self._buckets.get(index, 0) + 1

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1), or ``None`` before any value was added."""
        if not 0 <= q <= 1:
            raise ValueError("q must be between 0 and 1")
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        if rank < self._zeros:
            return 0.0
        seen = self._zeros
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen > rank:
                # The bucket's midpoint in relative terms; never report above the true max.
                return min(2 * self._gamma**index / (self._gamma + 1), self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def buckets(self) -> int:
        return len(self._buckets)

    def summary(self) -> dict[str, float | None]:
        return {
            "count": self.count,
            "mean": self.mean,
            "p50": self.quantile(0.50),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
            "max": self.max if self.count else None,
        }


class SlidingRate:
    """Events per window (default: the last 60 s), kept in one counter per second."""

    def __init__(self, window_seconds: int = 60, clock: Callable[[], float] = time.time) -> None:
        self._window = window_seconds
        self._clock = clock
        self._slots = [0] * window_seconds
        self._slot_second = [0] * window_seconds

    def add(self, count: int = 1, at: float | None = None) -> None:
        second = int(self._clock() if at is None else at)
        slot = second % self._window
        if self._slot_second[slot] != second:
            self._slot_second[slot] = second
            self._slots[slot] = 0
        self._slots[slot] += count

    def total(self) -> int:
        """Events in the last ``window_seconds`` seconds, this second included."""
        now = int(self._clock())
        return sum(
            n
            for n, second in zip(self._slots, self._slot_second, strict=True)
            if now - self._window < second <= now
        )

    def per_second(self) -> float:
        return self.total() / self._window

    def series(self) -> list[list[int]]:
        """``[second, events]`` for each second of the window, oldest first, zeros included."""
        now = int(self._clock())
        counts = dict(zip(self._slot_second, self._slots, strict=True))
        return [
            [second, counts.get(second, 0)] for second in range(now - self._window + 1, now + 1)
        ]
