"""Peers: which other blocks have workers with nothing to do, for sharing this block's queue.

A block reads only its own partitions, and a client's jobs are spread over them evenly
(``kafka/partitioner.Spread``), but blocks do not end a batch together: one worker took
13 ms of CPU per image where the other took 9.7, and the other block then sat idle for
0.55 to 0.9 s at the end (docs/performance.md, changes 11 and 13). Kafka cannot move
records between a group's members, so a block whose queue will keep it busy hands some of
it over to an idle peer (``handover.py``), as it does when its workers are all held.

What a peer can take is asked of it (``PeerLoad``), on a thread of this module, only while
this block has such a queue: an idle stack asks nothing. ``read`` is given by the cluster
(Ray calls to the other supervisors); a peer that does not answer in time is left out.
Times are this process's ``time.monotonic()``: a peer says how long it has been idle, not
since when, as its clock may be another machine's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Peer", "PeerBoard", "PeerLoad", "load_of"]

_log = logging.getLogger("computeinfra.supervisor")
# Pause between two readings while wanted: a Ray call to each peer (about 0.5 ms of CPU on
# both sides), only while this block has a queue to share.
READ_EVERY_SECONDS = 0.1
# Loads read longer ago than this are not used (reading stopped while the queue was short).
STALE_SECONDS = 1.5
# A peer given jobs is given no more until a reading begun after that saw it busy (it had
# them), or this long after (they went elsewhere: a rebalance).
OFFER_SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class PeerLoad:
    """What one block says it can take on: ``idle`` workers with nothing to run, counted
    only when nothing waits for them, the first idle for ``idle_seconds``; its partitions."""

    member: str
    idle: int
    idle_seconds: float
    partitions: frozenset[tuple[str, int]]


@dataclass(frozen=True)
class Peer:
    """A peer's load as this block saw it: idle since ``idle_since``, and seen idle by this
    board, reading after reading, since ``seen_idle_since`` (monotonic, here)."""

    member: str
    idle: int
    idle_since: float
    seen_idle_since: float
    partitions: frozenset[tuple[str, int]]


def load_of(
    member: str,
    taking: bool,
    idle_since: list[float | None],
    owned: frozenset[tuple[str, int]],
) -> PeerLoad:
    """A block's load: ``taking`` (it takes records and nothing waits there), and each
    worker's monotonic start of idleness (None: busy)."""
    since = [s for s in idle_since if s is not None] if taking else []
    idle_seconds = time.monotonic() - min(since) if since else 0.0
    return PeerLoad(member, len(since), idle_seconds, owned)


class PeerBoard:
    """The other blocks' latest loads, read on a thread while ``want`` is called."""

    def __init__(self, read: Callable[[], list[PeerLoad]] | None) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._peers: tuple[list[Peer], float] = ([], float("-inf"))  # and when read began
        self._seen_idle: dict[str, float] = {}  # member: the first reading that saw it idle
        self._offered: dict[str, float] = {}  # member: when it was last given jobs
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def want(self) -> None:
        """This block has work to share: read the loads (again) soon."""
        if self._read is not None and not self._wanted.is_set():
            self._wanted.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="peers", daemon=True)
                self._thread.start()

    def idle(self) -> list[Peer]:
        """The peers seen with idle workers in a recent reading, and not given jobs they
        may not have yet (``OFFER_SETTLE_SECONDS``)."""
        with self._lock:
            peers, read_at = self._peers
            now = time.monotonic()
            if now - read_at > STALE_SECONDS:
                return []
            return [
                peer
                for peer in peers
                if peer.idle > 0
                and now - self._offered.get(peer.member, -1e9) > OFFER_SETTLE_SECONDS
            ]

    def offered(self, member: str) -> None:
        """Jobs went to ``member``: it counts as busy until a reading begun now or later
        sees it busy, or ``OFFER_SETTLE_SECONDS`` pass."""
        with self._lock:
            self._offered[member] = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()

    def _run(self) -> None:
        assert self._read is not None
        failing = False
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            began = time.monotonic()
            try:
                loads, failing = self._read(), False
            except Exception:  # the block goes on without its peers' help
                if not failing:  # once, not ten times a second while it lasts
                    _log.exception("reading the other blocks' loads failed")
                loads, failing = [], True
            self._store(loads, began)
            self._stop.wait(READ_EVERY_SECONDS)  # a rate, not a wait for a condition

    def _store(self, loads: list[PeerLoad], began: float) -> None:
        now = time.monotonic()
        with self._lock:
            if began - self._peers[1] > STALE_SECONDS:
                self._seen_idle.clear()  # not read for a while: seen idle since now, at most
            peers = []
            for load in loads:
                if load.idle == 0:
                    self._seen_idle.pop(load.member, None)
                    if self._offered.get(load.member, now) < began:
                        del self._offered[load.member]  # busy with what it was given
                    continue
                seen = self._seen_idle.setdefault(load.member, began)
                since = now - load.idle_seconds
                peers.append(Peer(load.member, load.idle, since, seen, load.partitions))
            self._peers = (peers, began)
