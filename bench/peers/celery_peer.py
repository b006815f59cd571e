"""Celery 5 as a peer: a prefork worker subprocess and a client driver.

The client learns of each completion the way Celery's redis result backend is meant to be
used: ``apply_async`` subscribes to the task's pub/sub channel, ``AsyncResult.then``
registers the notification callback, and one collector thread calls ``AsyncResult.get`` in
submission order, which drains the pub/sub connection and so fires the callbacks of every
result that arrived meanwhile (Celery 5.7's result consumer is safe to drain from a thread
other than the submitter's).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .collector import Collector, size_of, wait_ready
from .process import worker_process

__all__ = ["CeleryDriver", "celery_peer"]

READY_TIMEOUT_SECONDS = 120.0
RESULT_TIMEOUT_SECONDS = 600.0


class CeleryDriver:
    name = "celery"

    def __init__(self, task: Any) -> None:
        self._task = task
        self._collector = Collector("celery-collector", self._wait)

    def submit(self, index: int, done: Callable[[int], None]) -> None:
        result = self._task.apply_async()
        result.then(lambda _r: done(index))
        self._collector.put(result)

    @staticmethod
    def _wait(result: Any) -> None:
        result.get(timeout=RESULT_TIMEOUT_SECONDS)

    def compress_all(self, out_dir: str, paths: list[str]) -> list[int]:
        """One ``compress`` job per image, all submitted first; their outputs' sizes."""
        from .celery_app import compress

        results = [compress.apply_async((out_dir, path)) for path in paths]
        return [size_of(lambda r=r: r.get(timeout=RESULT_TIMEOUT_SECONDS)) for r in results]

    def check(self) -> None:
        self._collector.check()

    def close(self) -> None:
        self._collector.close()


def _probe(task: Any) -> bool:
    from celery.exceptions import TimeoutError as CeleryTimeout

    try:
        task.apply_async().get(timeout=1)
    except CeleryTimeout:
        return False
    return True


@contextmanager
def celery_peer(redis_url: str, concurrency: int, logs: Path) -> Iterator[CeleryDriver]:
    """A ``celery worker --pool prefork --concurrency N`` on ``redis_url``, and a driver."""
    os.environ["BENCH_REDIS_URL"] = redis_url  # read when the app module is imported
    from .celery_app import QUEUE, noop

    command = [sys.executable, "-m", "celery", "-A", "peers.celery_app", "worker"]
    command += ["--pool", "prefork", "--concurrency", str(concurrency), "-Q", QUEUE]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    command += ["--loglevel", "WARNING"]
    log = logs / "celery-worker.log"
    with worker_process(command, {"BENCH_REDIS_URL": redis_url}, log) as process:
        wait_ready(process, lambda: _probe(noop), READY_TIMEOUT_SECONDS, log)
        driver = CeleryDriver(noop)
        try:
            yield driver
        finally:
            driver.close()
