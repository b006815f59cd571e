"""The worker: runs one job at a time, in its own process, and reports an ``Outcome``.

Exceptions raised by a task become a ``failed`` outcome here; only the death of the whole
process (SIGKILL, segfault, out of memory) escapes, and the supervisor handles that.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from typing import Any, Protocol

from pydantic_core import to_json

from computeinfra.config import Settings
from computeinfra.errors import PathError, Retry
from computeinfra.paths import resolve_result_dir
from computeinfra.protocol import ErrorInfo, FailureKind, Status
from computeinfra.tasks.context import TaskContext
from computeinfra.tasks.registry import load_registry

from .jobs import Assignment, Outcome

__all__ = ["CallGate", "Worker", "WorkerCall", "WorkerPort", "next_call_id"]

MAX_ERROR_MESSAGE_CHARS = 2000
_last_call_id = 0
_call_ids = threading.Lock()


def next_call_id() -> int:
    """A call id above every one this process made, and above those of a supervisor
    process before it (it is the clock's nanoseconds): a restarted supervisor's calls must
    not look begun to a worker that ran its predecessor's."""
    global _last_call_id
    with _call_ids:
        _last_call_id = max(_last_call_id + 1, time.time_ns())
        return _last_call_id


TRACEBACK_FRAMES = 5


class WorkerCall(Protocol):
    """A call in progress on a worker: one attempt or several, run in order."""

    call_id: int  # rises in the order calls are sent to one worker

    def wait(self, timeout: float) -> bool:
        """Whether the attempt's result (or its failure) is ready, waiting up to ``timeout``."""
        ...

    def outcome(self, timeout: float | None = None) -> list[Outcome]:
        """The attempts' outcomes; raises ``WorkerLost`` if the process died, and
        ``TimeoutError`` if they did not come within ``timeout`` seconds."""
        ...


class WorkerPort(Protocol):
    """How a supervisor reaches its worker (a Ray actor in production)."""

    def submit(self, assignments: list[Assignment]) -> WorkerCall: ...

    def cut(self, call_ids: list[int], timeout: float) -> dict[int, int]:
        """Ask the worker to stop these calls where they are: how many jobs of each will
        run (0: none; the running call's begun ones; ended calls are left out). Answered
        beside the running call, not after it."""
        ...

    def kill(self) -> None:
        """End the worker process now; it is restarted."""
        ...

    def describe(self, timeout: float) -> dict[str, Any]: ...


class CallGate:
    """Which calls, and which jobs of the running call, a worker may still begin.

    Why not ``ray.cancel``: Ray drops a call queued at a busy actor only once the call ahead
    of it ends, and reports a running call it could not stop as cancelled all the same
    (measured, Ray 2.60). A gate the worker itself keeps answers at once, and exactly.
    ``cut`` comes from another thread than the calls (the actor's "control" group).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._begun = -1  # the latest call begun; calls run in the order they were sent
        self._skipped: set[int] = set()
        self._jobs_begun = 0  # of the latest call begun
        self._cut = -1  # the running call told to begin no more of its jobs

    @property
    def begun(self) -> int:
        return self._begun

    def begin(self, call_id: int) -> bool:
        """Whether the call may run (it was not skipped); from then on it cannot be."""
        with self._lock:
            if call_id in self._skipped:
                self._skipped.discard(call_id)
                return False
            self._begun, self._jobs_begun = max(self._begun, call_id), 1
            return True

    def proceed(self, call_id: int) -> bool:
        """Whether the call's next job may begin."""
        with self._lock:
            if call_id == self._cut:
                return False
            self._jobs_begun += 1
            return True

    def cut(self, call_ids: list[int]) -> dict[int, int]:
        """Stop these calls where they are: how many jobs of each will run (0: none; for
        the running call, those begun). Calls that ended are left out."""
        with self._lock:
            kept = {c: 0 for c in call_ids if c > self._begun}
            self._skipped.update(kept)
            if self._begun in call_ids:
                self._cut = self._begun
                kept[self._begun] = self._jobs_begun
            return kept


def _error_info(exc: BaseException) -> ErrorInfo:
    message = str(exc) or repr(exc)
    if len(message) > MAX_ERROR_MESSAGE_CHARS:
        message = message[:MAX_ERROR_MESSAGE_CHARS] + "…"
    trace = "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES))
    return ErrorInfo(type=type(exc).__name__, message=message, traceback=trace)


class Worker:
    """Runs tasks from the registry. One instance per worker process."""

    def __init__(self, settings: Settings, block: int) -> None:
        self.settings = settings
        self.block = block
        self.registry = load_registry(settings.task_modules)
        self.started_at = time.time()
        self.gate = CallGate()

    def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "last_call": self.gate.begun,  # the latest call begun (tests wait on it)
        }

    def run_all(self, assignments: list[Assignment], call_id: int = -1) -> list[Outcome]:
        """Several attempts in one call, in order (quick jobs share a call's overhead);
        fewer, or none, if the supervisor took the rest back (``CallGate.cut``)."""
        if not self.gate.begin(call_id):
            return []
        outcomes = [self.run(assignments[0])]
        for assignment in assignments[1:]:
            if not self.gate.proceed(call_id):
                break
            outcomes.append(self.run(assignment))
        return outcomes

    def cut(self, call_ids: list[int]) -> dict[int, int]:
        return self.gate.cut(call_ids)

    def run(self, assignment: Assignment) -> Outcome:
        """One attempt. Whatever goes wrong in it (the task's own exception, a result
        directory that cannot be made, a result too large or not JSON) is this job's
        ``failed`` outcome: only the death of the whole process escapes."""
        started = time.time()
        task = self.registry.get(assignment.task)  # known: it was checked at intake
        try:
            ctx = self._context(assignment)
        except PathError as exc:  # e.g. result_dir names a file: this job's answer alone
            return Outcome(
                status=Status.FAILED,
                started_at=started,
                error=ErrorInfo(type=FailureKind.PATH, message=str(exc), field=exc.field),
            )
        try:
            result = task(assignment.payload, ctx)
        except Exception as exc:  # a task's own failure is the job's answer, not ours
            return Outcome(
                status=Status.FAILED,
                started_at=started,
                outputs=tuple(ctx.outputs),
                error=_error_info(exc),
                retryable=isinstance(exc, (Retry, *task.retry_on)),
            )
        problem = self._result_problem(result)
        if problem is not None:
            return Outcome(
                status=Status.FAILED, started_at=started, outputs=tuple(ctx.outputs), error=problem
            )
        return Outcome(
            status=Status.SUCCEEDED, started_at=started, outputs=tuple(ctx.outputs), result=result
        )

    def _context(self, assignment: Assignment) -> TaskContext:
        result_dir = resolve_result_dir(self.settings.results_root, assignment.result_dir)
        try:
            result_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PathError(
                f"cannot use result_dir {assignment.result_dir!r}: {exc.strerror or exc}",
                field="result_dir",
            ) from exc
        ctx = TaskContext(
            key=assignment.key,
            attempt=assignment.attempt,
            results_root=self.settings.results_root,
            result_dir=result_dir,
        )
        # Not only on a retry: a job whose block died is read again by another block as
        # attempt 1, and its killed attempt's temporaries are still there.
        if ctx.left_behind():
            ctx.discard_stale_temporaries()
        return ctx

    def _result_problem(self, result: Any) -> ErrorInfo | None:
        """Why ``result`` cannot travel in a completion, or ``None``. Checked here, so a
        result that cannot be answered never reaches the supervisor's transaction."""
        if result is None:
            return None
        try:
            size = len(to_json(result))
        except Exception as exc:  # pydantic cannot encode it (a socket, a custom class…)
            return ErrorInfo(
                type=FailureKind.RESULT_NOT_JSON,
                message=f"the task returned a value JSON cannot carry: {exc}"[
                    :MAX_ERROR_MESSAGE_CHARS
                ],
            )
        limit = self.settings.max_result_bytes
        if size > limit:
            return ErrorInfo(
                type=FailureKind.RESULT_TOO_LARGE,
                message=(
                    f"the task's result is {size} bytes of JSON; the limit is {limit} "
                    "(COMPUTEINFRA_MAX_RESULT_BYTES). Write large outputs to files "
                    "(ctx.write_bytes) and return a summary."
                ),
            )
        return None
