"""A thread kept to run calls beside the caller's thread, one at a time, in order.

Why not a thread per call: the outbox sends each transaction's offsets beside the delivery
of its records (``transaction.py``), and starting a thread for it cost about 0.3 ms of the
supervisor's CPU a transaction (docs/performance.md, change 19). Why not a
``ThreadPoolExecutor``: its threads are joined at interpreter exit, and a call stuck inside
librdkafka would then keep the process from ever ending; this one's thread is a daemon.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["Sidecar"]


class Sidecar:
    """Runs the calls handed to it on its own daemon thread. A call that never returns
    holds the thread for good: its owner starts another ``Sidecar`` and calls ``stop`` on
    this one, whose thread then ends if the call ever returns."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def run(self, call: Callable[[], None]) -> threading.Event:
        """Queue ``call``; the event is set once it returned or raised (it must not raise:
        what it raises is lost, so a caller hands its errors back itself)."""
        done = threading.Event()

        def wrapped() -> None:
            try:
                call()
            finally:
                done.set()

        self._calls.put(wrapped)
        return done

    def stop(self) -> None:
        """End the thread once the calls queued before have run."""
        self._calls.put(None)

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                call()
            except BaseException:  # the caller hands its own errors back; the thread stays
                continue
