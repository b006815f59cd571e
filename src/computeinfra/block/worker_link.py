"""A supervisor's link to its worker process: which process it sends to, and waiting for a
new one after a loss; and what the job running there says of its progress.

Ray fails a call to a worker it is still restarting at once (ActorUnavailableError), and a
call sent right after ``kill`` can still reach the old process and die with it; either
would spend an attempt of a job that never ran. So after a loss nothing is sent until a
process other than the lost one answers.
"""

from __future__ import annotations

import logging
import threading
import time

from computeinfra.protocol import Progress

from .worker import WorkerPort

__all__ = ["PROGRESS_SECONDS", "ProgressRelay", "WorkerLink"]

_log = logging.getLogger("computeinfra.supervisor")
WORKER_BACK_TIMEOUT_SECONDS = 120.0
WORKER_ASK_TIMEOUT_SECONDS = 5.0
WORKER_POLL_SECONDS = 0.05
FIRST_ANSWER_TIMEOUT_SECONDS = 60.0
LOSING_ASK_TIMEOUT_SECONDS = 1.0
# How often a lane asks the job its worker has run this long, alone, for its progress.
PROGRESS_SECONDS = 0.5


class WorkerLink:
    def __init__(self, worker: WorkerPort, block: int, stop: threading.Event) -> None:
        self._worker = worker
        self._block = block
        self._stop = stop
        self.pid: int | None = None  # as last read (status() refreshes it from its thread)
        # The process jobs are sent to, as last confirmed. Not ``pid``, which status()
        # refreshes from another thread: after a loss it may already name the new process,
        # which must not be mistaken for the lost one.
        self._sending_to: int | None = None

    def pid_now(self, timeout: float) -> int | None:
        """The worker's pid, or None if it did not answer (dead, restarting or busy)."""
        try:
            return int(self._worker.describe(timeout)["pid"])
        except Exception as exc:  # the next submit will surface a real failure
            _log.debug("block %s: worker did not answer: %s", self._block, exc)
            return None

    def refresh(self, timeout: float = FIRST_ANSWER_TIMEOUT_SECONDS) -> None:
        self.pid = self.pid_now(timeout)
        if self.pid is None:
            _log.warning("block %s: worker did not answer within %.0f s", self._block, timeout)

    def send_to_current(self) -> None:
        self._sending_to = self.pid

    def losing(self) -> None:
        """The process about to be killed is the one a new process must differ from.
        Asked now, not taken from what was last confirmed: Ray may have restarted the
        worker since without a word (its process killed while idle), and a new-looking
        pid that is still the one being killed would take the next job down with it."""
        pid = self.pid_now(LOSING_ASK_TIMEOUT_SECONDS)
        if pid is not None:
            self._sending_to = pid

    def wait_for_new(self) -> None:
        """Block until a worker process other than the lost one answers (or a stop)."""
        lost_pid, deadline = self._sending_to, time.monotonic() + WORKER_BACK_TIMEOUT_SECONDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            pid = self.pid_now(WORKER_ASK_TIMEOUT_SECONDS)
            if pid is not None and pid != lost_pid:
                self.pid = self._sending_to = pid
                return
            self._stop.wait(WORKER_POLL_SECONDS)  # polling a condition with a deadline
        if not self._stop.is_set():  # sending will surface the failure
            _log.warning(
                "block %s: no new worker after %.0f s", self._block, WORKER_BACK_TIMEOUT_SECONDS
            )


class ProgressRelay:
    """What the job a worker has been on for ``PROGRESS_SECONDS`` last said of its progress,
    asked every ``PROGRESS_SECONDS``, when it is new. Never in the job's way: a worker that
    does not answer in time is asked again later."""

    def __init__(self, worker: WorkerPort) -> None:
        self._worker = worker
        self._at = 0.0  # monotonic: when to ask next
        self._told: Progress | None = None  # the progress last passed on

    def news(self, key: str, running_since: float) -> Progress | None:
        """What the job ``key``, on the worker since ``running_since`` (monotonic), said
        that was not passed on yet; None when nothing is due, or nothing is new."""
        now = time.monotonic()
        if now < max(self._at, running_since + PROGRESS_SECONDS):
            return None
        self._at = now + PROGRESS_SECONDS
        try:
            said = self._worker.progress(key, PROGRESS_SECONDS)
        except Exception:
            return None
        if said is None or said == self._told:
            return None
        self._told = said
        return said
