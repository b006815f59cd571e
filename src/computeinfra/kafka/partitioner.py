"""Kafka's default key partitioner (murmur2), so we can find a key's partition ourselves.

Our producers set ``partitioner=murmur2_random``, which is what Java clients use, so a job
submitted from kcat, Java or Python lands in the same partition for the same key. Looking up
one key's completion then reads one partition instead of all of them.

``Spread`` deals records whose key need not route them over a topic's partitions in turn.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

__all__ = ["Spread", "murmur2", "partition_for"]

_log = logging.getLogger("computeinfra.kafka")
RETRY_SECONDS = 5.0  # after a failed read of the partition count
MAX_DRAWS = 1000

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: a signed 32-bit hash."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    body = length - length % 4
    for i in range(0, body, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[body:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (``toPositive`` then mod)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Spread:
    """New keys that hash to a topic's partitions one after another (``count`` says how
    many it has): a client's jobs in ``pendingJobs`` spread evenly, and each still lies
    where its key hashes, where ``computeinfra status`` and any Kafka client look for it.

    Why: random keys leave partitions, and so blocks, unequal work. 400 jobs over 12
    partitions put 222 on one block and 178 on the other in one run, and the first ran on
    alone at the end (docs/performance.md, change 13). In turn, each partition gets a
    client's jobs to within one. Each client starts at a partition of its own, at random,
    so clients of one job each do not all land on the first.

    A key is found by drawing: ``count`` draws on average, about 50 us for 12 partitions.
    The partition count is read on a thread: ``key`` never waits for the broker, and
    takes the first draw until the count is known."""

    def __init__(self, count: Callable[[], int], refresh_seconds: float = 300.0) -> None:
        self._read_count = count  # the topic's partition count; raises if it cannot say
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._count = 0
        self._read_after = 0.0  # monotonic: when to read the count (again)
        self._reading = False
        self._turn = 0

    @property
    def count(self) -> int:
        """The partition count keys are spread over; 0 until it is known."""
        return self._count

    def key(self, draw: Callable[[], str]) -> str:
        """A key from ``draw`` for the next partition in turn."""
        with self._lock:
            if not self._reading and time.monotonic() >= self._read_after:
                self._reading = True
                threading.Thread(target=self._read, name="spread-metadata", daemon=True).start()
            count = self._count
            if count:
                self._turn = (self._turn + 1) % count
            target = self._turn
        for _ in range(MAX_DRAWS if count > 1 else 1):
            key = draw()
            if count <= 1 or partition_for(key.encode(), count) == target:
                return key
        return key  # drawn MAX_DRAWS times in vain (odds below 1e-30 for 12): any will do

    def _read(self) -> None:
        count = 0
        try:
            count = self._read_count()
        except Exception as exc:  # keys are drawn at random meanwhile; asked again later
            _log.debug("cannot read the partition count: %s", exc)
        with self._lock:
            self._reading = False
            self._read_after = time.monotonic() + (self._refresh if count else RETRY_SECONDS)
            if count and count != self._count:
                self._count, self._turn = count, random.randrange(count)
