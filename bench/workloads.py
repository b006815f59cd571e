"""The two no-op workloads, shared by computeinfra, Celery and Dramatiq.

A driver submits one no-op job and calls ``done(index)`` from whichever client thread
learns of its completion (our SDK's done callback, Celery's result promise, Dramatiq's
result getter). The workload stamps both moments with ``time.perf_counter``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Driver", "Recorder", "latency_at_rate", "percentiles_ms", "throughput"]

WAIT_TIMEOUT_SECONDS = 1800.0
CHECK_SECONDS = 1.0


class Driver(Protocol):
    name: str

    def submit(self, index: int, done: Callable[[int], None]) -> None: ...

    def check(self) -> None:
        """Raise if the driver can no longer deliver notifications."""


class Recorder:
    """Submit and notification times of ``n`` jobs; ``wait`` returns once all are notified."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.sent = [0.0] * n
        self.notified = [0.0] * n
        self._count = 0
        self._lock = threading.Lock()
        self._all = threading.Event()

    def done(self, index: int) -> None:
        self.notified[index] = time.perf_counter()
        with self._lock:
            self._count += 1
            if self._count == self.n:
                self._all.set()

    def wait(self, driver: Driver, timeout: float = WAIT_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not self._all.wait(CHECK_SECONDS):
            driver.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._count} of {self.n} jobs notified in {timeout:.0f} s")

    def latencies(self) -> list[float]:
        return [b - a for a, b in zip(self.sent, self.notified, strict=True)]


def percentiles_ms(latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000}


# Jobs run before any timing, the same number on every system: starts every process and
# connection, and lets the broker's JIT compile its hot paths (our first thousand jobs
# run at half speed on a fresh JVM). Overridden by `bench/run.py --warmup`.
WARM_UP_JOBS = 2000


def warm_up(driver: Driver, n: int | None = None) -> None:
    """Start every worker process and connection before timing; not reported."""
    n = WARM_UP_JOBS if n is None else n
    recorder = Recorder(n)
    for i in range(n):
        driver.submit(i, recorder.done)
    recorder.wait(driver, 300)


def throughput(driver: Driver, n: int) -> dict[str, Any]:
    """Submit ``n`` no-ops as fast as possible; jobs/s from first submit to last notification."""
    warm_up(driver)
    recorder = Recorder(n)
    for i in range(n):
        recorder.sent[i] = time.perf_counter()
        driver.submit(i, recorder.done)
    submitted = time.perf_counter()
    recorder.wait(driver)
    seconds = max(recorder.notified) - recorder.sent[0]
    return {
        "jobs": n,
        "seconds": seconds,
        "submit_seconds": submitted - recorder.sent[0],
        "per_second": n / seconds,
    }


def latency_at_rate(driver: Driver, rate: float, n: int) -> dict[str, Any]:
    """Submit ``n`` no-ops at ``rate`` per second; submit-to-notification percentiles."""
    warm_up(driver)
    recorder = Recorder(n)
    start = time.perf_counter()
    for i in range(n):
        # A load generator: absolute deadlines, so a slow submit does not shift the schedule.
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        recorder.sent[i] = time.perf_counter()
        driver.submit(i, recorder.done)
    achieved = n / (time.perf_counter() - start)
    recorder.wait(driver)
    return {
        "jobs": n,
        "rate": rate,
        "achieved_rate": achieved,
        **percentiles_ms(recorder.latencies()),
    }
