"""Recovery: SIGKILL a worker or a supervisor and time until its work resumes.

- worker: a ``sleep`` job runs; its block's worker is killed; the job's final completion
  (``attempts`` 2) says when its second attempt started. Resume = that start - the kill.
- supervisor: one is killed; at once one probe job is submitted per partition it owned
  (keys chosen with Kafka's murmur2 partitioner). Resume = the latest probe's start - the
  kill, i.e. until every orphaned partition is consumed again.

This joins the Ray cluster (for ``block_statuses``), so it runs after the memory figures.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any

import ray

from computeinfra import Client
from computeinfra.client import new_key
from computeinfra.cluster.launcher import block_statuses
from computeinfra.config import Settings
from computeinfra.kafka.partitioner import partition_for

__all__ = ["run_recovery"]

JOB_SECONDS = 3.0
HEALTHY_TIMEOUT_SECONDS = 180.0
SEEN_TIMEOUT_SECONDS = 60.0
RESULT_TIMEOUT_SECONDS = 180.0
POLL_SECONDS = 0.02


def _wait(what: str, condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)  # polling a condition with a deadline
    return found


def _healthy(settings: Settings) -> bool:
    rows = block_statuses(settings)
    owned = {p for row in rows for p in row.get("partitions", [])}
    ready = all(row.get("state") == "idle" and row.get("worker_pid") for row in rows)
    return ready and len(owned) == settings.partitions


def _running(row: dict[str, Any], key: str) -> bool:
    job = row.get("job")
    return job == key or (isinstance(job, list) and key in job) or key in row.get("jobs", ())


def _worker_once(client: Client, settings: Settings) -> float:
    handle = client.submit("sleep", {"seconds": JOB_SECONDS}, "bench-recovery")

    def block() -> dict[str, Any] | None:
        return next((r for r in block_statuses(settings) if _running(r, handle.key)), None)

    row = _wait(f"job {handle.key} running", block, SEEN_TIMEOUT_SECONDS)
    os.kill(row["worker_pid"], signal.SIGKILL)
    killed = time.time()
    completion = handle.completion(timeout=RESULT_TIMEOUT_SECONDS)
    if completion.attempts < 2 or completion.started_at is None:
        raise RuntimeError(f"the killed job was not retried: {completion!r}")
    return completion.started_at - killed


def _keys_for(partitions: list[int], count: int) -> list[str]:
    keys: dict[int, str] = {}
    while len(keys) < len(partitions):
        key = new_key()
        part = partition_for(key.encode(), count)
        if part in partitions:
            keys.setdefault(part, key)
    return list(keys.values())


def _supervisor_once(client: Client, settings: Settings, rep: int) -> float:
    rows = [r for r in block_statuses(settings) if r.get("partitions")]
    row = rows[rep % len(rows)]
    keys = _keys_for(list(row["partitions"]), settings.partitions)
    os.kill(row["supervisor_pid"], signal.SIGKILL)
    killed = time.time()
    handles = [client.submit("sleep", {"seconds": 0}, "bench-recovery", key=k) for k in keys]
    starts = [h.result(timeout=RESULT_TIMEOUT_SECONDS).started_at or killed for h in handles]
    return max(starts) - killed


def _summary(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(seconds), "max_s": max(seconds), "runs_s": seconds}


def run_recovery(client: Client, settings: Settings, repeats: int) -> dict[str, Any]:
    worker, supervisor = [], []
    try:
        for _ in range(repeats):
            _wait("every block idle", lambda: _healthy(settings), HEALTHY_TIMEOUT_SECONDS)
            worker.append(_worker_once(client, settings))
        for rep in range(repeats):
            _wait("every block idle", lambda: _healthy(settings), HEALTHY_TIMEOUT_SECONDS)
            supervisor.append(_supervisor_once(client, settings, rep))
    finally:
        # Leave the cluster before it stops: a Ray driver whose cluster is gone exits the
        # whole process a minute later, which would end the bench in the middle of the peers.
        ray.shutdown()
    return {"worker": _summary(worker), "supervisor": _summary(supervisor)}
