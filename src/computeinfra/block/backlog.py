"""A block's backlog: the jobs waiting for a worker, and when there are enough of them.

The supervisor puts jobs in the ``JobQueue``, lanes take them (``lanes.py``). While the
queue holds more than the workers will start soon, the block pauses its partitions
(``Backlog.full``) and goes on polling. "Soon" is time, not a count: a poll's worth of
quick jobs is a fraction of a second of work, and pausing for it stalls the block, since a
pause drops what librdkafka has fetched ahead (measured in issue #13: pausing once one
poll's 200 no-op jobs were queued cut throughput from about 2,700 to 780 jobs/s); a few
long jobs are minutes of work, better left on the topic for other blocks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

from .batching import MAX_JOBS_PER_CALL, BatchPlanner, limits_share
from .jobs import Outcome
from .slots import Slot

__all__ = ["PIPELINE_SECONDS", "Backlog", "JobQueue"]

# A lane queues more calls behind a running one only while all it has sent is expected to
# end within this (so a job queued at a worker never waits long for it).
PIPELINE_SECONDS = 0.05
# What a job costs its block beside its run (intake, its share of a worker call, its answer
# and transaction), so that many quick jobs still add up to time.
JOB_OVERHEAD_SECONDS = 0.0005
# Queued work, per worker, past which a block stops fetching more.
HORIZON_SECONDS = 1.0
# Polls' worth of jobs a block may hold queued at most, however quick (memory).
MAX_POLLS_QUEUED = 10


class JobQueue:
    """Jobs waiting for a worker, oldest first; the supervisor puts, lanes take."""

    def __init__(self, planner: BatchPlanner) -> None:
        self._jobs: deque[Slot] = deque()
        self._tasks: Counter[str] = Counter()  # queued jobs by task, for ``work``
        self._ready = threading.Condition()
        self._planner = planner

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, slots: list[Slot]) -> None:
        """Queue ``slots`` in order. A poll's records go in together, so that a lane wakes
        once for them and quick ones share a call (woken for each, lanes sent calls of
        four jobs on average at 600 jobs/s, against the twenty a poll brings)."""
        now = time.monotonic()
        for slot in slots:
            slot.queued_at = now
        with self._ready:
            self._jobs.extend(slots)
            self._tasks.update(slot.task for slot in slots)
            self._ready.notify(len(slots))

    def put_front(self, slots: list[Slot]) -> None:
        """Put ``slots`` back first in line, keeping when they were first queued; those sent
        to a worker before are waiting again, not running."""
        for slot in slots:
            slot.started_at = None
        with self._ready:
            self._jobs.extendleft(reversed(slots))
            self._tasks.update(slot.task for slot in slots)
            self._ready.notify(len(slots))

    def take_if(self, wanted: Callable[[Slot], bool]) -> list[Slot]:
        """Remove and return the queued jobs still in hand that are ``wanted``."""
        with self._ready:
            found = [s for s in self._jobs if not s.released and wanted(s)]
            self._remove(found)
            return found

    def take_last(self, count: int, wanted: Callable[[Slot], bool]) -> list[Slot]:
        """Remove and return up to ``count`` of the newest queued jobs still in hand that
        are ``wanted``, oldest of them first: those that would wait longest here."""
        with self._ready:
            found: list[Slot] = []
            for slot in reversed(self._jobs):
                if len(found) == count:
                    break
                if not slot.released and wanted(slot):
                    found.append(slot)
            self._remove(found)
            return found[::-1]

    def oldest(self) -> float | None:
        """When (monotonic) the job first in line was queued; None if none is."""
        with self._ready:
            return self._jobs[0].queued_at if self._jobs else None

    def topics(self) -> set[str]:
        with self._ready:
            return {s.message.topic() or "" for s in self._jobs}

    def take(self, timeout: float) -> list[Slot]:
        """The next job, with the quick ones after it that can share its call."""
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._jobs), timeout):
                return []
            return self._group()

    def take_quick(self) -> list[Slot]:
        """Like ``take``, without waiting, and only jobs expected to be quick."""
        with self._ready:
            self._drop_released()
            if not self._jobs or not self.quick(self._jobs[0]):
                return []
            return self._group()

    def clear(self) -> list[Slot]:
        """Empty the queue; returns the jobs still in hand it held."""
        with self._ready:
            dropped, self._jobs = list(self._jobs), deque()
            self._tasks.clear()
            return [slot for slot in dropped if not slot.released]

    def observe(self, task: str, outcome: Outcome) -> None:
        with self._ready:
            self._planner.observe(task, outcome)

    def quick(self, slot: Slot) -> bool:
        expected = self._planner.expected(slot.task)
        return expected is not None and expected < PIPELINE_SECONDS

    def expected(self, task: str) -> float | None:
        return self._planner.expected(task)

    def work(self, untimed: float) -> float:
        """The expected time of the jobs queued, overhead included; a job of a task not
        timed yet counts ``untimed``."""
        with self._ready:
            tasks = [(task, count) for task, count in self._tasks.items() if count > 0]
        total = 0.0
        for task, count in tasks:
            expected = self._planner.expected(task)
            total += count * (untimed if expected is None else expected + JOB_OVERHEAD_SECONDS)
        return total

    def _remove(self, found: list[Slot]) -> None:
        if found:
            taken = set(map(id, found))
            self._jobs = deque(s for s in self._jobs if id(s) not in taken)
            self._forget(found)

    def _forget(self, slots: Iterable[Slot]) -> None:
        self._tasks.subtract(slot.task for slot in slots)

    def _drop_released(self) -> None:
        while self._jobs and self._jobs[0].released:
            self._forget([self._jobs.popleft()])

    def _group(self) -> list[Slot]:
        self._drop_released()
        if not self._jobs:
            return []
        ahead = list(self._jobs)[:MAX_JOBS_PER_CALL]
        # The group ends before a job that may not share the first one's call: one to be
        # sent alone, or one of another time limit (``batching.limits_share``).
        first = ahead[0]
        run = next((i for i, s in enumerate(ahead) if i and not _shares(first, s)), len(ahead))
        count = 1 if run == 1 else self._planner.take([slot.task for slot in ahead[:run]])
        group = [self._jobs.popleft() for _ in range(min(count, len(self._jobs)))]
        self._forget(group)
        return [slot for slot in group if not slot.released]


def _shares(first: Slot, slot: Slot) -> bool:
    """Whether ``slot`` may go in the same call as ``first``, the job ahead of the group."""
    if first.alone or slot.alone or first.assignment is None or slot.assignment is None:
        return False
    return limits_share(first.assignment.time_limit, slot.assignment.time_limit)


class Backlog:
    """Whether a block holds enough queued work to stop fetching, with hysteresis: full
    from ``HORIZON_SECONDS`` of work per worker (or ``MAX_POLLS_QUEUED`` polls' worth of
    jobs), and again not once under half of both."""

    def __init__(self, jobs: JobQueue, batch: int, workers: int) -> None:
        self._jobs = jobs
        self._batch = batch
        self._horizon = HORIZON_SECONDS * max(workers, 1)
        self._full = False

    def full(self, retrying: int) -> bool:
        """Whether to pause fetching; ``retrying``: jobs waiting out a retry's backoff.

        Those count toward the jobs held (memory) but not as work: they are off the queue
        until their backoff ends, and counting them paused every partition of a block with
        idle workers for up to the longest backoff. A job of a task not timed yet counts as
        one worker's horizon, so that each idle worker may still be fed one."""
        count = len(self._jobs) + retrying
        cap = MAX_POLLS_QUEUED * self._batch
        scale = 0.5 if self._full else 1.0  # once full, until under half
        work = self._jobs.work(untimed=HORIZON_SECONDS)
        self._full = count >= cap * scale or work >= self._horizon * scale
        return self._full
