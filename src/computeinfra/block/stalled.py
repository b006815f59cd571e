"""Partitions a supervisor holds but never fetches, found and assigned again.

librdkafka asks the group coordinator for a newly assigned partition's committed offset
before it fetches the partition. When that OffsetFetch fails as a whole (``NOT_COORDINATOR``:
the coordinator moved, or unloaded the group while its broker was fenced and loaded it
again), librdkafka looks the coordinator up again but never asks again (librdkafka #5586,
2.16.0): the partitions stay "being queried" for good, and while any does, no other newly
assigned partition's offset is asked either. The consumer goes on polling and heartbeating
and keeps its partitions, and fetches nothing from them. CI met it after a 56 s VM freeze;
``tests/integration/test_stalled_fetch.py`` makes it on purpose.

librdkafka's statistics give each partition's fetch state. One assigned here whose fetcher
has not started for ``STALLED_SECONDS`` is taken out of the assignment and put back, which
ends the query and asks for its committed offset again (``membership.GroupMember``). No
record of it was read since it was assigned, so nothing in hand depends on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Set

__all__ = ["STALLED_SECONDS", "STATS_INTERVAL_MS", "StalledFetches"]

# How often librdkafka reports its statistics to the consume thread (a few kB of JSON).
STATS_INTERVAL_MS = 2_000
# A partition's fetcher starts within one round trip of its committed offset's answer; one
# that has not after this long waits on a query nobody will answer. Assigning it again
# early costs one more OffsetFetch, so this errs short.
STALLED_SECONDS = 10.0
# librdkafka's fetch states of a partition whose fetcher was never started (or was stopped).
_NOT_STARTED = frozenset({"none", "stopped"})

Where = tuple[str, int]


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
    """What the statistics say of each partition's fetcher, and which have stalled."""

    def __init__(
        self, after: float = STALLED_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._after = after
        self._clock = clock
        self._since: dict[Where, float] = {}  # not fetching since (by the statistics)
        self._steady = False

    def read(self, payload: str) -> None:
        """librdkafka's statistics (its ``stats_cb``)."""
        try:
            stats = json.loads(payload)
            idle = _not_started(stats) if isinstance(stats, dict) else None
        except ValueError:  # it runs inside the consumer's poll: it must not raise
            return
        if idle is None:
            return
        now = self._clock()
        self._since = {where: self._since.get(where, now) for where in idle}
        group = stats.get("cgrp")
        # "up": the coordinator is known and reachable; without one a partition waits for
        # its offset anyway, and assigning it again would not help.
        self._steady = (
            isinstance(group, dict)
            and group.get("state") == "up"
            and group.get("join_state") == "steady"
        )

    def due(self, assigned: Set[Where]) -> list[Where]:
        """The partitions in ``assigned`` not fetched for ``after`` seconds, each again at
        most once every ``after``. None while the coordinator is away or the group
        rebalances: librdkafka takes an assignment change made while a rebalance awaits the
        application as the application's answer to it."""
        if not self._steady:
            return []
        now = self._clock()
        due = sorted(
            where
            for where, since in self._since.items()
            if where in assigned and now - since >= self._after
        )
        for where in due:
            self._since[where] = now
        return due
