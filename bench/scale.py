"""Scale: memory of every long-lived process while many no-op jobs go through.

RSS is sampled once ``checkpoint`` jobs have completed and again at the end; growth
between the two must stay small for every process. Ray names actor processes
``ray::<Class>`` (``ray::<Class>.<method>`` while a call runs), so the
supervisor, worker and analyzer processes are found among the descendants of the
``computeinfra up`` process by that title, with no Ray connection in this (client) process.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psutil

from computeinfra import Client

__all__ = ["ROLES", "role_pids", "run_scale"]

# Ray titles an actor process after the class it wraps: actors.py wraps ``_<Role>Host``.
ROLES = {
    "supervisor": ("_SupervisorHost", "SupervisorActor"),
    "worker": ("_WorkerHost", "WorkerActor"),
    "analyzer": ("_AnalyzerHost", "AnalyzerActor"),
}
IN_FLIGHT = 10_000  # a producer that keeps at most this many jobs outstanding
RESULT_TIMEOUT_SECONDS = 3600.0
SAMPLES = 10


def _role(process: psutil.Process) -> str | None:
    try:
        title = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for role, classes in ROLES.items():
        if any(title.startswith(f"ray::{name}") for name in classes):
            return role
    return None


def role_pids(up_pid: int) -> dict[str, list[int]]:
    """Pids of the actor processes under ``computeinfra up``, by role."""
    found: dict[str, list[int]] = {role: [] for role in ROLES}
    for child in psutil.Process(up_pid).children(recursive=True):
        role = _role(child)
        if role is not None:
            found[role].append(child.pid)
    return found


def _rss(pids: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    sample: dict[str, dict[str, int]] = {}
    for role, members in {**pids, "client": [os.getpid()]}.items():
        sample[role] = {}
        for pid in members:
            try:
                sample[role][str(pid)] = psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                continue
    return sample


class _Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.completed = 0
        self.failures = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.slots = threading.BoundedSemaphore(IN_FLIGHT)

    def done(self, ok: bool) -> None:
        with self._lock:
            self.completed += 1
            self.failures += not ok
            self._changed.notify_all()
        self.slots.release()

    def wait_for(self, count: int, timeout: float = RESULT_TIMEOUT_SECONDS) -> None:
        with self._lock:
            if not self._changed.wait_for(lambda: self.completed >= count, timeout):
                raise TimeoutError(f"{self.completed} of {count} jobs completed in {timeout} s")


def _sampler(progress: _Progress, up_pid: int, marks: list[int], out: list[dict[str, Any]]) -> None:
    for mark in marks:
        progress.wait_for(mark)
        out.append({"jobs": mark, "at": time.monotonic(), "rss": _rss(role_pids(up_pid))})


def _growth(first: dict[str, dict[str, int]], last: dict[str, dict[str, int]]) -> dict[str, Any]:
    growth: dict[str, Any] = {}
    for role, before in first.items():
        per_pid = {
            pid: (last[role][pid] - rss) / rss * 100
            for pid, rss in before.items()
            if pid in last.get(role, {})
        }
        growth[role] = {
            "rss_mib_at_checkpoint": round(sum(before.values()) / 2**20, 1),
            "rss_mib_at_end": round(sum(last.get(role, {}).values()) / 2**20, 1),
            "max_growth_pct": max(per_pid.values()) if per_pid else None,
            "restarted": sorted(set(before) - set(last.get(role, {}))),
        }
    return growth


def run_scale(client: Client, up_pid: int, total: int, checkpoint: int) -> dict[str, Any]:
    """Run ``total`` no-ops with at most ``IN_FLIGHT`` outstanding; RSS growth per role."""
    progress = _Progress(total)
    step = max((total - checkpoint) // SAMPLES, 1)
    marks = sorted({checkpoint, *range(checkpoint + step, total, step), total})
    samples: list[dict[str, Any]] = []
    sampler = threading.Thread(target=_sampler, args=(progress, up_pid, marks, samples))
    sampler.start()
    start = time.monotonic()
    for _ in range(total):
        progress.slots.acquire()
        handle = client.submit("sleep", {"seconds": 0}, "bench-scale")
        handle.add_done_callback(lambda h: progress.done(h.completion().ok))
    sampler.join()
    seconds = time.monotonic() - start
    return {
        "jobs": total,
        "checkpoint": checkpoint,
        "failures": progress.failures,
        "seconds": seconds,
        "per_second": total / seconds,
        "growth": _growth(samples[0]["rss"], samples[-1]["rss"]),
        "samples": samples,
    }
