"""The worker: runs one job at a time, in its own process, and reports an ``Outcome``.

Exceptions raised by a task become a ``failed`` outcome here; only the death of the whole
process (SIGKILL, segfault, out of memory) escapes, and the supervisor handles that.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from typing import Any, Protocol

from pydantic_core import to_json

from computeinfra.config import Settings
from computeinfra.errors import PathError, Retry
from computeinfra.paths import resolve_result_dir
from computeinfra.protocol import ErrorInfo, FailureKind, Progress, Status
from computeinfra.tasks.context import TaskContext
from computeinfra.tasks.journal import OutputJournal, journal_name
from computeinfra.tasks.registry import load_registry

from .calls import CallGate
from .jobs import Assignment, Outcome

__all__ = ["Worker", "WorkerCall", "WorkerPort"]

MAX_ERROR_MESSAGE_CHARS = 2000
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

    def ask_to_stop(self, key: str, timeout: float) -> bool:
        """Tell the job ``key`` it was cancelled, if it is running (``ctx.cancelled``);
        whether it was. Answered beside the running call, like ``cut``."""
        ...

    def progress(self, key: str, timeout: float) -> Progress | None:
        """What the job ``key`` last said of its progress, if it is running and said any.
        Answered beside the running call, like ``cut``."""
        ...

    def describe(self, timeout: float) -> dict[str, Any]: ...


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
        # What this process's jobs begin to write, for a cancel that kills it mid-job.
        self.journal = OutputJournal(settings.journal_dir / journal_name(os.getpid()))
        self._running: TaskContext | None = None  # the job's context while its task runs

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

    def ask_to_stop(self, key: str) -> bool:
        """The job ``key`` was cancelled: tell its task, if it is the one running."""
        running = self._running
        if running is None or running.key != key:
            return False
        running.ask_to_stop()
        return True

    def progress_of(self, key: str) -> Progress | None:
        running = self._running
        return running.last_progress if running is not None and running.key == key else None

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
        self._running = ctx
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
        finally:
            self._running = None
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
        self.journal.begin()
        ctx = TaskContext(
            key=assignment.key,
            attempt=assignment.attempt,
            results_root=self.settings.results_root,
            result_dir=result_dir,
            journal=self.journal,
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
