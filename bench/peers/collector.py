"""The client-side thread that waits for peer results in submission order."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Collector", "size_of", "wait_ready"]


class Collector:
    """Calls ``wait(item)`` for each queued item on one thread; ``wait`` blocks until done."""

    def __init__(self, name: str, wait: Callable[[Any], None]) -> None:
        self._wait = wait
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._wait(item)
            except Exception as exc:  # reported by the bench instead of hanging it
                self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"waiting for a result failed: {self.error!r}") from self.error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(60)


def wait_ready(process: Any, probe: Callable[[], bool], timeout: float, log: Any) -> None:
    """Probe a freshly started worker until it answers, it exits, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not probe():
        if process.poll() is not None:
            raise RuntimeError(f"worker exited {process.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker did not answer within {timeout:.0f} s:\n{log.read_text()}")


def size_of(result: Callable[[], Any]) -> int:
    """A real-work job's output size, waited for; 0 for a job that failed, so that one
    failure is counted (``peer_seconds``) rather than ending the whole run."""
    try:
        return int(result())
    except Exception:  # the peer's own error types: any failure of that job
        return 0
