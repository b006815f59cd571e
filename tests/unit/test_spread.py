"""``Spread``: a client's new keys hash to the partitions in turn, so blocks get equal shares
(issue #15, docs/performance.md change 13)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter

from computeinfra.kafka.partitioner import Spread, partition_for

TIMEOUT = 10.0


def _new_key() -> str:
    return uuid.uuid4().hex


def _counted(spread: Spread) -> None:
    """Until the spread has read its count: each key asks, and the first starts the read."""
    deadline = time.monotonic() + TIMEOUT
    while spread.count == 0 and time.monotonic() < deadline:
        spread.key(_new_key)
        time.sleep(0.001)  # polling a condition with a deadline


def test_keys_go_to_every_partition_in_turn() -> None:
    spread = Spread(lambda: 12)
    _counted(spread)
    keys = [spread.key(_new_key) for _ in range(120)]
    partitions = [partition_for(k.encode(), 12) for k in keys]
    assert Counter(partitions) == {p: 10 for p in range(12)}
    assert all((b - a) % 12 == 1 for a, b in itertools.pairwise(partitions))
    assert len(set(keys)) == 120


def test_keys_are_drawn_at_random_until_the_count_is_known_and_after_it_fails() -> None:
    asked = threading.Event()

    def broken() -> int:
        asked.set()
        raise RuntimeError("broker away")

    spread = Spread(broken)
    key = spread.key(_new_key)  # never waits for the count
    assert len(key) == 32 and asked.wait(TIMEOUT)
    assert spread.key(_new_key) != key  # still drawn, one draw each


def test_two_clients_start_at_partitions_of_their_own() -> None:
    firsts = set()
    for _ in range(20):
        spread = Spread(lambda: 12)
        _counted(spread)
        firsts.add(partition_for(spread.key(_new_key).encode(), 12))
    assert len(firsts) > 1  # 20 clients all on one partition: odds of 1 in 12**19
