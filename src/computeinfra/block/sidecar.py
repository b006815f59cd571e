"""A thread kept to run a call beside the caller's own work, under a deadline.

Why not a thread per call: the outbox sends each transaction's offsets beside the delivery
of its records (``transaction.py``), and starting a thread for it cost about 0.3 ms of the
supervisor's CPU a transaction (docs/performance.md, change 19). Why not a
``ThreadPoolExecutor``: its threads are joined at interpreter exit, and a call stuck inside
librdkafka would then keep the process from ever ending; these threads are daemons.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["Sidecar"]

Calls = queue.SimpleQueue[Callable[[], None] | None]


class Sidecar:
    """Runs calls on a thread of its own, one at a time. A call still running when its
    caller stops waiting for it (past the deadline, or the caller's own work raised) keeps
    that thread, which ends after it: the next call gets a new thread, never a place in
    line behind it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls = self._start()

    def run(self, call: Callable[[], None], meanwhile: Callable[[], None], timeout: float) -> bool:
        """Run ``call`` there while this thread runs ``meanwhile``; whether ``call`` ended
        within ``timeout`` after that. What ``meanwhile`` raises is raised; what ``call``
        raises is lost (a caller hands its errors back itself)."""
        done = threading.Event()

        def wrapped() -> None:
            try:
                call()
            finally:
                done.set()

        self._calls.put(wrapped)
        try:
            meanwhile()
        except BaseException:
            if not done.is_set():
                self._leave()
            raise
        if done.wait(timeout):
            return True
        self._leave()
        return False

    def stop(self) -> None:
        """End the thread once the call it is on, if any, has returned."""
        self._calls.put(None)

    def _leave(self) -> None:
        self.stop()
        self._calls = self._start()

    def _start(self) -> Calls:
        calls: Calls = queue.SimpleQueue()
        threading.Thread(target=_serve, args=(calls,), name=self._name, daemon=True).start()
        return calls


def _serve(calls: Calls) -> None:
    while (call := calls.get()) is not None:
        try:
            call()
        except BaseException:  # the caller hands its own errors back; the thread stays
            continue
