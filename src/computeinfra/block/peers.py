"""Peers: which other blocks have workers with nothing to do, for sharing this block's queue.

A block reads only its own partitions, and a client's jobs are spread over them evenly
(``kafka/partitioner.Spread``), but blocks do not end a batch together: one worker ran its
images 15 % slower than the other in one run, and the other then sat idle for the last
0.5 s of 3 (docs/performance.md, change 13). Kafka cannot move records between a group's
members, so a block whose queue will keep it busy hands some of it over to an idle peer
(``handover.py``), as it does when its workers are all held by long jobs.

What a peer can take is asked of it (``PeerLoad``), on a thread of this module, only while
this block has such a queue: an idle stack asks nothing. ``read`` is given by the cluster
(Ray calls to the other supervisors); a peer that does not answer in time is left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PeerBoard", "PeerLoad"]

_log = logging.getLogger("computeinfra.supervisor")
# How often the loads are read while wanted: a Ray call to each peer (about 0.5 ms of CPU
# on both sides), only while this block has a queue to share.
READ_EVERY_SECONDS = 0.1
# A peer given jobs is not given more until it was seen busy, or this long after: the jobs
# reach it only with this block's next transaction, and its load says idle until then.
OFFER_SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class PeerLoad:
    """What one block can take on now: ``idle`` workers with nothing to run, counted only
    when nothing waits for them (its queue is empty, no partition paused), the first of
    them idle since ``idle_since`` (``time.time()``: blocks are processes, maybe on other
    machines); and the partitions it owns."""

    member: str
    idle: int
    idle_since: float
    partitions: frozenset[tuple[str, int]]


class PeerBoard:
    """The other blocks' latest loads, read on a thread while ``want`` is called."""

    def __init__(self, read: Callable[[], list[PeerLoad]] | None) -> None:
        self._read = read
        self._loads: list[PeerLoad] = []
        self._read_at = 0.0  # monotonic: when ``_loads`` was read
        self._offered: dict[str, float] = {}  # member: monotonic time of the last offer
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

    def idle(self) -> list[PeerLoad]:
        """The peers last seen with idle workers, and given no jobs since then."""
        found = []
        for load in self._loads:
            offered = self._offered.get(load.member)
            if load.idle > 0 and (offered is None or self._read_at > offered):
                found.append(load)
        return found

    def offered(self, member: str) -> None:
        """Jobs went to ``member``: it counts as busy until its load is read after they
        could have reached it."""
        self._offered[member] = time.monotonic() + OFFER_SETTLE_SECONDS

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()

    def _run(self) -> None:
        assert self._read is not None
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            try:
                loads = self._read()
            except Exception:  # the block goes on without its peers' help
                _log.exception("reading the other blocks' loads failed")
                loads = []
            now = time.monotonic()
            self._settle(loads, now)
            self._loads, self._read_at = loads, now
            self._stop.wait(READ_EVERY_SECONDS)  # a rate, not a wait for a condition

    def _settle(self, loads: list[PeerLoad], now: float) -> None:
        """A peer given jobs and now seen busy has them: it may be offered more once idle."""
        busy = {load.member for load in loads if load.idle == 0}
        for member, until in list(self._offered.items()):
            if member in busy or until <= now:
                self._offered[member] = min(until, now - 1e-6)
