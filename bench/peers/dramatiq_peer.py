"""Dramatiq as a peer: a worker subprocess and a client driver.

``--processes N --threads 1`` gives N single-threaded worker processes, the same
concurrency as N working blocks (each one worker process). The client learns of each
completion the way Dramatiq documents: ``message.get_result(block=True)`` on the Results
middleware's Redis backend, called by one collector thread in submission order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .collector import Collector, size_of, wait_ready
from .process import BENCH_DIR, worker_process

__all__ = ["DramatiqDriver", "dramatiq_peer"]

READY_TIMEOUT_SECONDS = 120.0
RESULT_TIMEOUT_MS = 600_000
THREADS_PER_PROCESS = 1


class DramatiqDriver:
    name = "dramatiq"

    def __init__(self, actor: Any) -> None:
        self._actor = actor
        self._collector = Collector("dramatiq-collector", self._wait)

    def submit(self, index: int, done: Callable[[int], None]) -> None:
        self._collector.put((index, self._actor.send(), done))

    @staticmethod
    def _wait(item: tuple[int, Any, Callable[[int], None]]) -> None:
        index, message, done = item
        message.get_result(block=True, timeout=RESULT_TIMEOUT_MS)
        done(index)

    def compress_all(self, out_dir: str, paths: list[str]) -> list[int]:
        """One ``compress`` job per image, all submitted first; their outputs' sizes."""
        from .dramatiq_app import compress

        messages = [compress.send(out_dir, path) for path in paths]
        return [
            size_of(lambda m=m: m.get_result(block=True, timeout=RESULT_TIMEOUT_MS))
            for m in messages
        ]

    def check(self) -> None:
        self._collector.check()

    def close(self) -> None:
        self._collector.close()


def _probe(actor: Any) -> bool:
    from dramatiq.results import ResultTimeout

    try:
        actor.send().get_result(block=True, timeout=1000)
    except ResultTimeout:
        return False
    return True


@contextmanager
def dramatiq_peer(redis_url: str, concurrency: int, logs: Path) -> Iterator[DramatiqDriver]:
    """A ``dramatiq`` worker with ``concurrency`` processes on ``redis_url``, and a driver."""
    os.environ["BENCH_REDIS_URL"] = redis_url  # read when the app module is imported
    from .dramatiq_app import QUEUE, noop

    command = [sys.executable, "-m", "dramatiq", "peers.dramatiq_app", "--path", str(BENCH_DIR)]
    command += ["--processes", str(concurrency), "--threads", str(THREADS_PER_PROCESS)]
    command += ["--queues", QUEUE]
    log = logs / "dramatiq-worker.log"
    with worker_process(command, {"BENCH_REDIS_URL": redis_url}, log) as process:
        wait_ready(process, lambda: _probe(noop), READY_TIMEOUT_SECONDS, log)
        driver = DramatiqDriver(noop)
        try:
            yield driver
        finally:
            driver.close()
