"""The thread a block's transactions run on, one at a time and in order.

A transaction is five or six round trips to the broker (about 6 ms here). Run on the
consume thread, records and results waited behind each one: at 200 jobs/s one arrives
every 5 ms, so most jobs waited for a transaction not theirs (docs/performance.md: the
fetch hop's p50 went from 4.8 to 1.6 ms, its p99 from 29 to 6 ms). The consume thread now
hands each transaction here and goes on polling, dispatching and collecting results; it
cuts the next one only once this one has ended and its outcome is applied
(``Commits.finish``), so transactions never overlap and commit in order.

A daemon thread, not a ``ThreadPoolExecutor``, whose threads are joined when the process
exits: a transaction retrying against a broker that is away must not hold up the exit of
a supervisor's process (its uncommitted answers are read again, by design). A supervisor
that stops or starts a new round still waits for it (``Flow.settle``), as it waited for
its commits before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["CommitThread"]

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class CommitThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started on first use

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` after what was submitted before; its outcome in the future."""
        future: Future[Any] = Future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._work.put((future, fn, args))
        return future

    def _run(self) -> None:
        while True:
            future, fn, args = self._work.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the consume thread (``Commits.finish``)
                future.set_exception(exc)
            else:
                future.set_result(result)
