"""Short jobs while a long one runs: submit-to-notification latency of short jobs at a
steady rate, first on an idle stack, then while one long job holds a worker.

Before issue #13 a block answered in consumed order with one worker: every short job that
landed on the long job's block waited for it. The figure is the p99 ratio of the two runs,
measured in the same command on the same stack. Then issue #13's measure: 30 jobs of 0.1 s
with keys spread over every partition, submitted at once beside the long job, must all
complete within 30 s (their keys on the long job's block are handed over or run by its
other workers). The long job is cancelled at the end, so the stack stops at once.

This joins the Ray cluster (to see the long job start), so it runs after the memory figures.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ours import OursDriver
from workloads import latency_at_rate

from computeinfra import Client, Status
from computeinfra.cluster.launcher import block_statuses
from computeinfra.config import Settings
from computeinfra.kafka.partitioner import partition_for

__all__ = ["run_long_job"]

RATE = 20.0  # short jobs per second
START_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.2
BURST_JOBS = 30
BURST_TIMEOUT_SECONDS = 120.0


def _running(settings: Settings, key: str) -> bool:
    return any(key in (row.get("jobs") or []) for row in block_statuses(settings))


def run_long_job(
    client: Client, settings: Settings, jobs: int, long_seconds: float
) -> dict[str, Any]:
    driver = OursDriver(client)
    idle = latency_at_rate(driver, RATE, jobs)
    long = client.submit("sleep", {"seconds": long_seconds}, "bench-long-job")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while not _running(settings, long.key):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the long job did not start in {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(POLL_SECONDS)  # polling a condition with a deadline
    finally:
        # Leave the cluster before it stops (as recovery.py does): a Ray driver whose
        # cluster is gone exits the whole process a minute later, in the middle of the peers.
        ray.shutdown()
    busy = latency_at_rate(driver, RATE, jobs)
    burst = _burst(client, settings.partitions)
    done_during = long.done()
    long.cancel("the bench is over")
    return {
        "long_seconds": long_seconds,
        "rate": RATE,
        "idle": idle,
        "with_long_job": busy,
        "burst": burst,
        "long_job_done_during": done_during,
    }


def _spread_keys(count: int, partitions: int) -> list[str]:
    """``count`` new keys that land on every partition in turn."""
    keys: list[str] = []
    n = 0
    while len(keys) < count:
        key = f"bench-burst-{time.time_ns()}-{n}"
        n += 1
        if partition_for(key.encode(), partitions) == len(keys) % partitions:
            keys.append(key)
    return keys


def _burst(client: Client, partitions: int) -> dict[str, Any]:
    """Submit ``BURST_JOBS`` jobs of 0.1 s at once; the seconds until the last completed."""
    keys = _spread_keys(BURST_JOBS, partitions)
    start = time.perf_counter()
    handles = [client.submit("sleep", {"seconds": 0.1}, "bench-burst", key=k) for k in keys]
    done = [h.result(BURST_TIMEOUT_SECONDS) for h in handles]
    return {
        "jobs": BURST_JOBS,
        "seconds": time.perf_counter() - start,
        "succeeded": sum(c.status is Status.SUCCEEDED for c in done),
    }
