"""Attempts queued at one worker, so it never waits for its supervisor between jobs.

A Ray actor runs its calls one at a time, in the order they were sent. Keeping a few calls
queued there hides the round trip (supervisor → worker → supervisor) that otherwise
separates every two jobs, and a call may carry several quick jobs, so that one round trip
serves them all (see ``batching.py``). The accounting stays per job:

- results are taken in the order they were sent, so a call cannot have started before the
  one ahead of it answered. When a call carrying one attempt is lost (its worker died or
  overran the time limit), that attempt failed, and every call queued behind it never
  started: they are sent again to the restarted worker, and nothing is counted for them;
- when a call carrying several jobs is lost, which of them was running is unknown, so none
  is counted: each is sent again on its own, and a job that kills its worker is then caught
  and counted by itself. Unless a take-back cut the call after the job the worker was on
  (``take_back``): that one's attempt failed, and those before it are sent again;
- a call's time limit runs from when it could have started: when the call ahead of it
  answered (or when it was sent, if the worker was idle).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from computeinfra.protocol import FailureKind

from .jobs import Assignment, Failure, NotRun, Outcome, WorkerLost
from .worker import WorkerCall, WorkerPort

__all__ = ["Attempt", "AttemptQueue"]

Result = Outcome | Failure
MAX_MESSAGE_CHARS = 2000
# How long a worker may take to say where it stopped the calls it was asked to.
TAKE_BACK_SECONDS = 1.0
Idle = Callable[[float], float]


@dataclass(frozen=True)
class Attempt:
    """One attempt's result, as collected."""

    assignment: Assignment
    result: Result | NotRun


@dataclass
class _Call:
    assignments: list[Assignment]
    handle: WorkerCall
    sent_at: float = field(default_factory=time.monotonic)
    results: deque[Result | NotRun] | None = None  # set once the call answered
    # A take-back stopped it after its last job: the worker is on that one, the jobs
    # before it ended (their outcomes come with the call's answer).
    cut: bool = False


class AttemptQueue:
    """The calls a supervisor has sent to its worker and not yet collected."""

    def __init__(
        self,
        worker: WorkerPort,
        *,
        on_worker_lost: Callable[[], None] | None = None,
        kill: Callable[[], None] | None = None,
    ) -> None:
        self._worker = worker
        self._kill = kill or worker.kill  # a lane notes first which process it kills
        self._calls: deque[_Call] = deque()
        self._on_worker_lost = on_worker_lost or (lambda: None)
        self._last_answer_at = time.monotonic()

    def __len__(self) -> int:
        """Calls queued (each carries one job or several)."""
        return len(self._calls)

    def head_since(self) -> tuple[float, int] | None:
        """When the oldest call still running could have begun (monotonic: when it was
        sent, or when the call ahead of it answered), and how many jobs it carries; None
        when no call is running. Not when it was sent: calls queued behind others wait
        their turn, and must not look long for it. Read from other threads too."""
        try:
            head = self._calls[0]
        except IndexError:
            return None
        if head.results is not None:
            return None
        return max(head.sent_at, self._last_answer_at), len(head.assignments)

    def running_now(self) -> Assignment | None:
        """The attempt the worker is on, when it is known: its call carries it alone, or a
        take-back cut its call after it. Killing the worker then costs that attempt alone:
        the jobs that shared its call and the calls behind it are sent again, uncounted."""
        try:
            head = self._calls[0]
        except IndexError:
            return None
        known = head.results is None and (len(head.assignments) == 1 or head.cut)
        return head.assignments[-1] if known else None

    def idle_since(self) -> float | None:
        """Since when (monotonic) the worker has had no call, about; None while it has one.
        Read from other threads too."""
        return None if self._calls else self._last_answer_at

    def next_not_run(self) -> bool:
        """Whether the next result is in, and says its attempt never ran."""
        results = self._calls[0].results if self._calls else None
        return results is not None and bool(results) and isinstance(results[0], NotRun)

    def send(self, assignments: Sequence[Assignment]) -> None:
        if not self._calls:
            self._last_answer_at = time.monotonic()  # the worker was idle until now
        self._calls.append(_Call(list(assignments), self._worker.submit(list(assignments))))

    def collect(self, idle: Idle | None = None) -> Attempt:
        """Wait for the oldest job's result and return it, removed from the queue.

        ``idle(deadline)`` is called while the worker is still busy with it, with the
        call's monotonic deadline; it may do other work (commit answers) and returns how
        long it is willing to keep waiting before it wants to be called again.
        """
        head = self._calls[0]
        while head.results is None:
            self._answer(head, idle)
            head = self._calls[0]  # a lost call of several was replaced by single calls
        assignment = head.assignments[len(head.assignments) - len(head.results)]
        result = head.results.popleft()
        if not head.results:
            self._calls.popleft()
        return Attempt(assignment, result)

    def take_back(self) -> list[Assignment]:
        """Have the worker stop where it is: the jobs of the running call it has not begun
        (quick jobs share a call), and the calls queued behind it. Returns the attempts it
        will never run, to be sent again (uncounted) wherever a worker is free; a job that
        had begun stays, and is collected in its turn."""
        open_calls = [c for c in self._calls if c.results is None]
        if not open_calls or (len(open_calls) == 1 and len(open_calls[0].assignments) == 1):
            return []
        try:
            kept = self._worker.cut([c.handle.call_id for c in open_calls], TAKE_BACK_SECONDS)
        except Exception:  # no answer (the worker is dying, say): all run in their turn
            return []
        taken: list[Assignment] = []
        for call in open_calls:
            runs = kept.get(call.handle.call_id, len(call.assignments))
            if not runs and call is self._calls[0]:
                # Not begun either (its worker is restarting, say): it stays where
                # ``collect`` waits for it, and comes back as NotRun, to be queued again.
                continue
            taken.extend(call.assignments[runs:])
            # Named by the worker as begun and not ended: it is on the last job it began.
            call.cut = call.cut or (runs > 0 and call.handle.call_id in kept)
            call.assignments = call.assignments[:runs]
            if not runs:
                self._calls.remove(call)
        return taken

    def drain(self) -> list[Attempt]:
        """Collect every queued job (each may still fail); used before a retry."""
        attempts = []
        while self._calls:
            attempts.append(self.collect())
        return attempts

    def _answer(self, head: _Call, idle: Idle | None) -> None:
        limits = [a.time_limit for a in head.assignments]
        limit = math.inf if None in limits else max(x for x in limits if x is not None)
        deadline = max(head.sent_at, self._last_answer_at) + limit
        try:
            while idle is not None and not head.handle.wait(0):
                pause = idle(deadline)
                remaining = deadline - time.monotonic()
                # Past the deadline: no more waiting in steps (``outcome`` times out below).
                if pause <= 0 or remaining <= 0 or head.handle.wait(min(pause, remaining)):
                    break
            left = None if limit == math.inf else max(deadline - time.monotonic(), 0.0)
            outcomes = head.handle.outcome(timeout=left)
            # Fewer outcomes than jobs: the worker stopped the call where a take-back asked,
            # and answered it after we stopped waiting. The rest never ran.
            unrun = (NotRun() for _ in head.assignments[len(outcomes) :])
            head.results = deque([*outcomes, *unrun])
        except WorkerLost as lost:
            self._lost(head, f"the worker process died during attempt {{attempt}}: {lost}")
        except TimeoutError:
            self._kill()
            self._lost(
                head,
                f"attempt {{attempt}} ran past its time limit of {limit:g} s; "
                "its worker was restarted",
                kind=FailureKind.TIME_LIMIT,
            )
        except Exception as exc:  # the call failed, not a task in it: e.g. an outcome Ray
            # cannot move. The calls behind it are unaffected. A call of one job fails it,
            # as an attempt the retry policy may send again; a call of several is not
            # counted, and each of its jobs goes again in a call of its own, so that only
            # the one that made the call fail fails (not every job that shared its call).
            message = f"the call to the worker failed: {exc!r}"[:MAX_MESSAGE_CHARS]
            results: list[Result | NotRun] = [Failure(FailureKind.WORKER_ERROR, message)]
            if len(head.assignments) > 1:
                results = [NotRun(alone=True) for _ in head.assignments]
            head.results = deque(results)
        self._last_answer_at = time.monotonic()

    def _lost(self, head: _Call, message: str, kind: FailureKind = FailureKind.WORKER_LOST) -> None:
        """``head`` is lost with its worker; resend what never ran, or ran uncounted. The
        attempt the worker was on, if known, failed; in a call of several, which one was
        is not known, so none is counted."""
        self._on_worker_lost()
        behind = list(self._calls)[1:]
        self._calls.clear()
        known = len(head.assignments) == 1 or head.cut
        ended = head.assignments[:-1] if known else head.assignments
        for assignment in ended:  # each alone: one that kills its worker is then caught
            self._resend(_Call([assignment], head.handle))
        if known:  # its answer, after those sent again: results pair in send order
            attempt = head.assignments[-1].attempt
            lost = _Call(head.assignments[-1:], head.handle, head.sent_at)
            lost.results = deque([Failure(kind, message.format(attempt=attempt))])
            self._calls.append(lost)
        for call in behind:
            self._resend(call)

    def _resend(self, call: _Call) -> None:
        call.handle = self._worker.submit(call.assignments)
        call.sent_at = time.monotonic()
        self._calls.append(call)
