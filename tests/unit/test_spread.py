"""``Spread``: a client's new keys hash to the partitions in turn, so blocks get equal shares
(issue #15, docs/performance.md change 13)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter

import pytest

from computeinfra.kafka import partitioner
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


def test_keys_are_drawn_at_once_while_the_count_cannot_be_read_which_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(partitioner, "RETRY_SECONDS", 0.01)
    asked = threading.Semaphore(0)

    def broken() -> int:
        asked.release()
        raise RuntimeError("broker away")

    spread = Spread(broken)
    draws: list[str] = []

    def draw() -> str:
        draws.append(_new_key())
        return draws[-1]

    assert spread.key(draw) == draws[0] and len(draws) == 1  # never waits, one draw
    assert asked.acquire(timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while not asked.acquire(blocking=False):  # a key asked after the retry time reads again
        assert time.monotonic() < deadline, "the count was not asked again"
        spread.key(draw)
        time.sleep(0.005)  # polling a condition with a deadline
    assert spread.count == 0 and len(draws) == len(set(draws))


def test_two_clients_start_at_partitions_of_their_own() -> None:
    firsts = set()
    for _ in range(20):
        spread = Spread(lambda: 12)
        _counted(spread)
        firsts.add(partition_for(spread.key(_new_key).encode(), 12))
    assert len(firsts) > 1  # 20 clients all on one partition: odds of 1 in 12**19
