"""Which jobs share one call to the worker.

A Ray call costs CPU on both sides: about 1 ms of the supervisor's and as much of the
worker's, measured on 1,600 image jobs of 10 to 12 ms (docs/performance.md, change 8). On
2 cores that is taken from the work itself. Jobs of a task whose recent runs were short go
to the worker together, so one call serves several; anything longer, or of a task not seen
yet, goes alone, so that a crash or a time limit is pinned on exactly one job (see
``pipeline.py``). The price: a job's answer waits for the end of its call, up to
``CALL_BUDGET_SECONDS`` of work behind it (the first of 8 jobs of 12 ms, 84 ms), where
alone it would wait for the next answers five times its run time (``commits.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .jobs import Outcome

__all__ = ["BatchPlanner", "limits_share"]

# A job counts as quick when its task's recent run time is under this (a setting): alone,
# its call's cost would be more than about a tenth of its work.
QUICK_JOB_SECONDS = 0.025
# One call's expected run time stays under this, so no answer is held back for long. 100 ms,
# not 50: images of 12 to 16 ms (as timed on two busy cores) went 3 or 4 to a call, 6 to 8
# now, and each call costs Ray's work on both sides (docs/performance.md, change 21).
CALL_BUDGET_SECONDS = 0.1
MAX_JOBS_PER_CALL = 32
# A call's time limit is its jobs' one, counted from the call's start (``pipeline.py``), so
# only jobs of the same limit share a call, and not under this: the jobs ahead of one in its
# call would eat a short limit away (one that then ran out would lose the whole call). 20
# times the budget: the jobs ahead take at most 5 % of a limit.
SHARED_LIMIT_FLOOR_SECONDS = 20 * CALL_BUDGET_SECONDS
# Weight of the newest run in a task's running average.
SMOOTHING = 0.2


class BatchPlanner:
    """Learns each task's run time from its outcomes and groups quick jobs."""

    def __init__(self, quick_seconds: float = QUICK_JOB_SECONDS) -> None:
        self._quick = quick_seconds
        self._run_time: dict[str, float] = {}

    def observe(self, task: str, outcome: Outcome) -> None:
        took = max(outcome.finished_at - outcome.started_at, 0.0)
        before = self._run_time.get(task)
        self._run_time[task] = took if before is None else before + SMOOTHING * (took - before)

    def expected(self, task: str) -> float | None:
        """``task``'s recent run time, or None before it has run here."""
        return self._run_time.get(task)

    def take(self, tasks: Sequence[str]) -> int:
        """How many of the next jobs (by task name, in order) to send in one call: at
        least one; more only while each is quick and the call stays within budget."""
        total = 0.0
        for count, task in enumerate(tasks[:MAX_JOBS_PER_CALL]):
            expected = self._run_time.get(task)
            if expected is None or expected >= self._quick:
                return max(count, 1)
            total += expected
            if count and total > CALL_BUDGET_SECONDS:
                return count
        return max(min(len(tasks), MAX_JOBS_PER_CALL), 1)


def limits_share(first: float | None, other: float | None) -> bool:
    """Whether a job with time limit ``other`` may share the call of one with ``first``
    (``None``: no limit)."""
    return first == other and (first is None or first >= SHARED_LIMIT_FLOOR_SECONDS)
