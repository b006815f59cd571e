"""CPU seconds by process, summed by kind: shared by ``profile.py`` and ``floor.py``."""

from __future__ import annotations

import psutil

__all__ = ["cpu_seconds", "spent_by_kind"]


def cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    """Each live process's CPU so far (user + system); one gone is left out."""
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


def spent_by_kind(
    kinds: dict[int, str], before: dict[int, float], after: dict[int, float]
) -> dict[str, float]:
    """CPU seconds spent between two ``cpu_seconds`` readings, summed by each pid's kind;
    a process is counted only if both readings found it."""
    spent: dict[str, float] = {}
    for pid, kind in kinds.items():
        if pid in before and pid in after:
            spent[kind] = spent.get(kind, 0.0) + after[pid] - before[pid]
    return spent
