"""Partitions a supervisor holds but never fetches: found, and its consumer replaced.

librdkafka asks the group coordinator for a newly assigned partition's committed offset
before it fetches the partition. When that OffsetFetch fails as a whole (``NOT_COORDINATOR``:
the coordinator moved, or unloaded the group while its broker was fenced and loaded it
again), librdkafka looks the coordinator up again but never asks again (librdkafka #5586,
2.16.0): the partitions stay "being queried" for good, and while any does, no other newly
assigned partition's offset is asked either, and a revoke never completes (the group stays
mid-rebalance). The consumer goes on polling and heartbeating and keeps its partitions, and
fetches nothing from them. CI met it after a 56 s VM freeze;
``tests/integration/test_stalled_fetch.py`` makes it on purpose.

librdkafka's statistics give each partition's fetch state. When one held here has not
started fetching for ``STALLED_SECONDS``, the supervisor closes its consumer and joins
again under the same static id (``membership.ConsumerDead``): closing clears the query, the
group gives the same partitions back without a rebalance, and the new consumer asks for
their offsets afresh. Assigning the partitions again on the same consumer would be lighter,
but librdkafka takes an assignment change made while a rebalance awaits the application as
the application's answer to it, and the statistics cannot tell that no rebalance is waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Set

from .positions import Where

__all__ = ["STALLED_SECONDS", "STATS_INTERVAL_MS", "StalledFetches"]

# How often librdkafka reports its statistics to the consume thread (a few kB of JSON).
STATS_INTERVAL_MS = 2_000
# A partition's fetcher starts within a round trip of its committed offset's answer, but the
# answer may wait, rightly, for a previous owner's transaction to end (at most its
# transaction timeout, 15 s: ``transaction.TRANSACTION_TIMEOUT_MS``). Past twice that, the
# question was lost.
STALLED_SECONDS = 30.0
# librdkafka's fetch states of a partition whose fetcher was never started (or was stopped).
_NOT_STARTED = frozenset({"none", "stopped"})
# librdkafka's group state once the coordinator is known and reachable. Without one, a
# partition's offset cannot be asked, and a new consumer would wait as long.
_COORDINATOR_UP = "up"


def _not_started(stats: dict[str, object]) -> set[Where]:
    found: set[Where] = set()
    topics = stats.get("topics")
    for topic, entry in (topics if isinstance(topics, dict) else {}).items():
        partitions = entry.get("partitions", {}) if isinstance(entry, dict) else {}
        for number, partition in partitions.items():
            # -1 is librdkafka's internal "unassigned" partition, never fetched.
            state = partition.get("fetch_state") if isinstance(partition, dict) else None
            if number != "-1" and state in _NOT_STARTED:
                found.add((topic, int(number)))
    return found


class StalledFetches:
    """What the statistics last said of each partition's fetcher, and which held partitions
    have not fetched for ``after`` seconds."""

    def __init__(
        self, after: float = STALLED_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._after = after
        self._clock = clock
        self._idle: set[Where] = set()  # not fetching, by the last statistics
        self._up = False
        self._since: dict[Where, float] = {}  # held and not fetching since

    def read(self, payload: str) -> None:
        """librdkafka's statistics (its ``stats_cb``, called inside the consumer's poll)."""
        try:
            stats = json.loads(payload)
            idle = _not_started(stats) if isinstance(stats, dict) else None
        except ValueError:  # inside the poll it must not raise
            return
        if idle is None:
            return
        group = stats.get("cgrp")
        self._idle = idle
        self._up = isinstance(group, dict) and group.get("state") == _COORDINATOR_UP

    def assigned(self, given: Iterable[Where]) -> None:
        """``given`` were just assigned: their wait starts now, not when last seen idle."""
        for where in given:
            self._since.pop(where, None)

    def stalled(self, held: Set[Where]) -> list[Where]:
        """The partitions in ``held`` that have not fetched for ``after`` seconds by the
        statistics, while the coordinator was there to answer."""
        now = self._clock()
        waiting = self._idle & held if self._up else set()
        self._since = {where: self._since.get(where, now) for where in waiting}
        return sorted(w for w, since in self._since.items() if now - since >= self._after)
