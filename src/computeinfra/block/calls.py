"""Which calls a worker has begun, and which it must never begin (take-back).

A supervisor numbers its calls; the worker's ``CallGate`` answers "stop these where they
are" at once, on the actor's control thread, while a call runs.

Why not ``ray.cancel``: Ray drops a call queued at a busy actor only once the call ahead of
it ends, and reports a running call it could not stop as cancelled all the same (measured,
Ray 2.60). A gate the worker itself keeps answers at once, and exactly.
"""

from __future__ import annotations

import itertools
import secrets
import threading

__all__ = ["CallGate", "next_call_id", "sender_of"]

# A call id is a sender token (random per supervisor process) above a counter. Not the
# clock: a restarted supervisor's calls must never look begun to a worker that ran its
# predecessor's, even if the clock stepped back in between.
_COUNTER_BITS = 40
_token = secrets.randbits(22) + 1
_counter = itertools.count(1)
_counting = threading.Lock()


def next_call_id() -> int:
    """A call id above every one this process made before, in this process's own series."""
    with _counting:
        return (_token << _COUNTER_BITS) | next(_counter)


def sender_of(call_id: int) -> int:
    return call_id >> _COUNTER_BITS


class CallGate:
    """Which calls, and which jobs of the running call, a worker may still begin.

    Calls from one sender run in the order they were sent, so "not begun" is "above the
    latest begun of its sender". ``cut`` comes from another thread than the calls.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._begun_by_sender: dict[int, int] = {}  # one entry per supervisor process
        self._running = -1  # the latest call begun
        self._skipped: set[int] = set()
        self._jobs_begun = 0  # of the running call
        self._cut = -1  # the running call told to begin no more of its jobs

    @property
    def begun(self) -> int:
        """The latest call begun (-1: none yet)."""
        return self._running

    def begin(self, call_id: int) -> bool:
        """Whether the call may run (it was not skipped); from then on it cannot be."""
        with self._lock:
            if call_id in self._skipped:
                self._skipped.discard(call_id)
                return False
            sender = sender_of(call_id)
            self._begun_by_sender[sender] = max(self._begun_by_sender.get(sender, -1), call_id)
            self._running, self._jobs_begun = call_id, 1
            return True

    def proceed(self, call_id: int) -> bool:
        """Whether the call's next job may begin."""
        with self._lock:
            if call_id == self._cut:
                return False
            self._jobs_begun += 1
            return True

    def cut(self, call_ids: list[int]) -> dict[int, int]:
        """Stop these calls where they are: how many jobs of each will run (0: none; for
        the running call, those begun). Calls that ended are left out."""
        with self._lock:
            kept = {c: 0 for c in call_ids if not self._has_begun(c)}
            self._skipped.update(kept)
            if self._running in call_ids:
                self._cut = self._running
                kept[self._running] = self._jobs_begun
            return kept

    def _has_begun(self, call_id: int) -> bool:
        return call_id <= self._begun_by_sender.get(sender_of(call_id), -1)
