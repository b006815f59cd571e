"""The recent jobs the app shows, merged from the three job topics (plain, thread-safe).

Records of one key arrive from different topics in no particular order between them, so a
step never moves a job back: pending < running (a later attempt wins) < terminal.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from computeinfra.client.lookup import JobLookup
from computeinfra.protocol import Completion, JobRequest, JobState, JobStatus
from computeinfra.web.models import JobView, view_of_completion, view_of_status

__all__ = ["JobBoard", "view_of_lookup", "view_of_request"]

_RANK = {JobState.PENDING: 0, JobState.RUNNING: 1}
TERMINAL_RANK = 2


def _rank(view: JobView) -> int:
    return _RANK.get(view.state, TERMINAL_RANK)


def view_of_request(key: str, request: JobRequest | None, timestamp: float) -> JobView:
    return JobView(
        key=key,
        state=JobState.PENDING,
        task=request.task if request else None,
        result_dir=request.result_dir if request else None,
        submitted_at=(request.submitted_at if request else None) or timestamp,
        updated_at=timestamp,
    )


def view_of_lookup(found: JobLookup) -> JobView | None:
    if found.completion is not None:
        return view_of_completion(found.completion)
    if found.status is not None:
        return view_of_status(found.status)
    if found.state is None:
        return None
    return JobView(
        key=found.key, state=found.state, task=found.task, submitted_at=found.submitted_at
    )


def _moves_forward(old: JobView, new: JobView) -> bool:
    old_rank, new_rank = _rank(old), _rank(new)
    if new_rank != old_rank:
        return new_rank > old_rank
    if new_rank == TERMINAL_RANK:  # the completion itself beats the status that announced it
        return new.completion is not None and old.completion is None
    if new.state is JobState.RUNNING:
        return new.attempt > old.attempt or (
            new.attempt == old.attempt and (new.updated_at or 0) > (old.updated_at or 0)
        )
    return False


def merge(old: JobView | None, new: JobView) -> JobView | None:
    """The view after ``new`` arrives, or ``None`` when it changes nothing."""
    if old is None:
        return new
    resubmitted = (
        new.state is JobState.PENDING
        and _rank(old) == TERMINAL_RANK
        and (new.submitted_at or 0) > (old.finished_at or 0)
    )
    if not resubmitted and not _moves_forward(old, new):
        return None
    # What the newer step does not know (the result folder from the request) is kept.
    return new.model_copy(
        update={
            "task": new.task or old.task,
            "result_dir": new.result_dir or old.result_dir,
            "submitted_at": new.submitted_at or old.submitted_at,
            "max_attempts": new.max_attempts or old.max_attempts,
        }
    )


class JobBoard:
    """At most ``capacity`` jobs, the least recently changed dropped first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._jobs: OrderedDict[str, JobView] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, view: JobView) -> JobView | None:
        """Merge ``view`` in; return the job's new view if it changed."""
        with self._lock:
            merged = merge(self._jobs.get(view.key), view)
            if merged is None:
                return None
            self._jobs[view.key] = merged
            self._jobs.move_to_end(view.key)
            while len(self._jobs) > self._capacity:
                self._jobs.popitem(last=False)
            return merged

    def request(self, key: str, request: JobRequest | None, timestamp: float) -> JobView | None:
        return self.put(view_of_request(key, request, timestamp))

    def status(self, status: JobStatus) -> JobView | None:
        return self.put(view_of_status(status))

    def completion(self, completion: Completion) -> JobView | None:
        return self.put(view_of_completion(completion))

    def get(self, key: str) -> JobView | None:
        with self._lock:
            return self._jobs.get(key)

    def recent(self, limit: int, keys: Iterable[str] | None = None) -> list[JobView]:
        """Newest first (by submission), optionally only ``keys``."""
        with self._lock:
            if keys is None:
                chosen = list(self._jobs.values())
            else:
                chosen = [v for k in set(keys) if (v := self._jobs.get(k)) is not None]
        chosen.sort(key=lambda v: v.submitted_at or v.updated_at or 0, reverse=True)
        return chosen[:limit]
