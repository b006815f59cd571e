"""Blocks that stay unready are restarted in the background (issue #17, item 2), and a
group that leaves partitions to no one is made to rebalance in full.

`up` comes up with the blocks that are ready and never gives up on the stack because of
one. A block whose supervisor does not answer (``unreachable``), or whose consume thread
keeps dying (``dead``), for longer than a grace period has its supervisor actor killed:
Ray starts it again, with the same seat and transactional id, so it fences what its
predecessor left and takes its partitions back. A block that is busy or draining is never
touched, however long its jobs run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from computeinfra.protocol import BlockState

__all__ = ["BlockKeeper"]

_log = logging.getLogger("computeinfra.cluster")
CHECK_SECONDS = 10.0
# Longer than a consume thread's own restart (1 s) and a supervisor's Ray restart (seconds):
# those mend most troubles by themselves first.
GRACE_SECONDS = 60.0
# Only a supervisor that does not answer: a ``dead`` consume thread restarts itself every
# second, and a supervisor restarted while the broker is away would be no better.
UNWELL = {BlockState.UNREACHABLE}
# Each restart (or reseat) doubles the wait before the next, up to this many graces; past
# MAX_RESEATS the keeper only says what it sees: the cause is elsewhere.
MAX_BACKOFF = 16
MAX_RESEATS = 5


class BlockKeeper:
    """Watches ``statuses()`` and calls ``restart(index)`` on a block unwell too long."""

    def __init__(
        self,
        statuses: Callable[[], list[dict[str, Any]]],
        restart: Callable[[int], None],
        grace: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        *,
        unowned: Callable[[], list[Any]] = list,
        reseat: Callable[[], None] = lambda: None,
    ) -> None:
        self._statuses = statuses
        self._restart = restart
        self._unowned = unowned
        self._reseat = reseat
        self._unowned_since: float | None = None
        self._unowned_seen: frozenset[Any] = frozenset()
        self.reseats = 0
        self._backoff: dict[int, int] = {}
        self._grace = grace
        self._clock = clock
        self._unwell_since: dict[int, float] = {}
        self.restarts: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_group(self) -> bool:
        """One look at the group: the same partitions of a stable group owned by no member
        for longer than the grace make a block rejoin with a new seat, which rebalances the
        whole group. Those are a cooperative rebalance cut in half that the group stored: a
        block restarted by Ray takes its old seat back, and with it the half assignment."""
        try:
            stuck = frozenset(self._unowned())
        except Exception:  # the broker cannot tell now: start counting afresh
            self._unowned_since, self._unowned_seen = None, frozenset()
            raise
        now = self._clock()
        if not stuck or stuck != self._unowned_seen:  # gone, or other partitions: a
            self._unowned_seen = stuck  # rebalance in its rounds, not a stored half
            self._unowned_since = now if stuck else None
            return False
        since = self._unowned_since if self._unowned_since is not None else now
        wait = self._grace * min(2**self.reseats, MAX_BACKOFF)
        if now - since < wait or self._stop.is_set():
            return False
        if self.reseats >= MAX_RESEATS:
            _log.error("partitions %s still unowned after %d reseats: see `computeinfra "
                       "doctor`", sorted(stuck), self.reseats)  # fmt: skip
            self._unowned_since = now
            return False
        _log.warning("partitions %s unowned for %.0f s; a block rejoins with a new seat",
                     sorted(stuck), now - since)  # fmt: skip
        self._unowned_since, self.reseats = now, self.reseats + 1
        self._reseat()
        return True

    def check(self) -> list[int]:
        """One look: restarts the blocks unwell for longer than their grace (doubled after
        each restart of theirs); returns them."""
        now, restarted = self._clock(), []
        for index, status in enumerate(self._statuses()):
            if status.get("state") not in UNWELL:
                self._unwell_since.pop(index, None)
                continue
            since = self._unwell_since.setdefault(index, now)
            wait = self._grace * min(2 ** self._backoff.get(index, 0), MAX_BACKOFF)
            if now - since < wait or self._stop.is_set():
                continue
            _log.warning("block %s has been %s for %.0f s (%s); restarting its supervisor",
                         index, status.get("state"), now - since, status.get("error"))  # fmt: skip
            self._unwell_since[index] = now  # give the new one its own grace
            self._backoff[index] = self._backoff.get(index, 0) + 1
            try:
                self._restart(index)
            except Exception as exc:  # the next look tries again
                _log.warning("restarting block %s failed: %s", index, exc)
                continue
            self.restarts[index] = self.restarts.get(index, 0) + 1
            restarted.append(index)
        return restarted

    def start(self, every: float = CHECK_SECONDS) -> None:
        def loop() -> None:
            while not self._stop.wait(every):
                for look in (self.check, self.check_group):
                    try:
                        look()
                    except Exception as exc:  # a look that failed (Ray busy): the next one
                        _log.debug("block keeper: %s", exc)

        self._thread = threading.Thread(target=loop, name="block-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CHECK_SECONDS)
