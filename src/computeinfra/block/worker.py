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

from computeinfra.config import Settings
from computeinfra.errors import Retry
from computeinfra.paths import resolve_result_dir
from computeinfra.protocol import ErrorInfo, Status
from computeinfra.tasks.context import TaskContext
from computeinfra.tasks.registry import load_registry

from .jobs import Assignment, Outcome

__all__ = ["Worker", "WorkerCall", "WorkerPort"]

MAX_ERROR_MESSAGE_CHARS = 2000
TRACEBACK_FRAMES = 5


class WorkerCall(Protocol):
    """A call in progress on a worker: one attempt or several, run in order."""

    def wait(self, timeout: float) -> bool:
        """Whether the attempt's result (or its failure) is ready, waiting up to ``timeout``."""
        ...

    def outcome(self, timeout: float | None = None) -> list[Outcome]:
        """The attempts' outcomes; raises ``WorkerLost`` if the process died and
        ``TimeoutError`` if they did not come within ``timeout`` seconds."""
        ...


class WorkerPort(Protocol):
    """How a supervisor reaches its worker (a Ray actor in production)."""

    def submit(self, assignments: list[Assignment]) -> WorkerCall: ...

    def kill(self) -> None:
        """End the worker process now; it is restarted."""
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

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": self.started_at}

    def run_all(self, assignments: list[Assignment]) -> list[Outcome]:
        """Several attempts in one call, in order (quick jobs share a call's overhead)."""
        return [self.run(assignment) for assignment in assignments]

    def run(self, assignment: Assignment) -> Outcome:
        started = time.time()
        task = self.registry.get(assignment.task)
        result_dir = resolve_result_dir(self.settings.results_root, assignment.result_dir)
        result_dir.mkdir(parents=True, exist_ok=True)
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
        return Outcome(
            status=Status.SUCCEEDED, started_at=started, outputs=tuple(ctx.outputs), result=result
        )
