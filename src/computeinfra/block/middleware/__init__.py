"""Supervisor middleware: cross-cutting policies as hooks, one policy per module.

Like Dramatiq's middleware, each hook is called in order for every job; the supervisor's
loop stays free of policy branches. Hooks that decide something return ``None`` for
"no opinion"; the first answer wins.

- ``retries.RetryPolicy``: failed attempts are retried with exponential backoff;
- ``dead_letter.DeadLetterFailures``: a job that fails for good is copied to ``deadJobs``;
- ``reporting.AnalyzerReporter``: lifecycle events go to the analyzer;
- ``status.StatusPublisher``: each job's lifecycle goes to ``jobStatus``;
- ``placement.ResourcePlacement``: jobs run only where their task's resources are;
- ``loading``: user middleware named by ``COMPUTEINFRA_MIDDLEWARE``, after the built-ins.

No hook can stop a block: ``MiddlewareChain`` turns a hook that raises on a job into that
job's ``failed`` completion, and logs and counts one that raises outside a job.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from computeinfra.protocol import Completion, Progress

if TYPE_CHECKING:
    from computeinfra.block.jobs import Assignment, Failure, Forward
    from computeinfra.block.records import OutboxRecord
    from computeinfra.errors import RequestError

__all__ = ["HookError", "Middleware", "MiddlewareChain"]

_log = logging.getLogger("computeinfra.middleware")


class Middleware:
    """Base class; override only the hooks a policy needs."""

    def on_received(self, key: str | None, task: str | None) -> None:
        """A record was consumed (valid or not); ``task`` is the one it names
        (``protocol.named_task``), ``None`` if none readably."""

    def on_inherited(self, key: str) -> None:
        """The job ``key`` was read here after another owner may have read it (a rebalance,
        a handover, a stopping block): what that owner published for it may need
        replacing. Called at intake whatever the verdict (before ``placement``), and when a
        job this block let go comes back so read."""

    def placement(self, assignment: Assignment) -> Forward | RequestError | None:
        """Where a valid job runs: ``None`` here, a ``Forward`` to another topic, or a
        ``RequestError`` that rejects it (no block anywhere can run it)."""
        return None

    def before_dispatch(self, assignment: Assignment) -> None:
        """An attempt is about to be sent to the worker."""

    def on_attempt_failed(self, assignment: Assignment, failure: Failure) -> None:
        """An attempt failed: the task raised, the worker died, or it ran out of time."""

    def on_progress(self, assignment: Assignment, progress: Progress, started_at: float) -> None:
        """The running attempt (sent to its worker at ``started_at``) said how far it has
        got (``ctx.progress``); a hook that fails is counted, and the job goes on."""

    def retry_delay(self, assignment: Assignment, failure: Failure) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up."""
        return None

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        """Records to publish in the same transaction as ``completion``."""
        return ()

    def commit_records(self, in_hand: Mapping[str, float | None]) -> Sequence[OutboxRecord]:
        """Records to publish in the transaction about to commit, before its answers (what
        happened since the last one, such as attempts that started); ``in_hand``: the jobs
        this block still holds (a job let go is another block's now), by key: when their
        attempt was sent to a worker (``time.time()``), or ``None`` while it waits for one."""
        return ()

    def records_due(self) -> float | None:
        """When (``time.monotonic()``) this middleware will have records for a transaction
        (``commit_records``) even if no answer is ready by then; ``None``: no need."""
        return None

    def on_worker_restart(self) -> None:
        """The worker process died (or was killed) and is being restarted."""

    def after_completion(self, completion: Completion) -> None:
        """The terminal completion was committed."""

    def on_idle(self) -> None:
        """The consumer polled and found nothing; a moment for periodic work."""


class HookError(Exception):
    """A middleware hook raised while a job was handled: that job's answer is a ``failed``
    completion of kind ``MiddlewareError`` naming the middleware and the hook."""

    def __init__(self, middleware: str, hook: str, cause: BaseException) -> None:
        super().__init__(f"middleware {middleware}.{hook} raised {type(cause).__name__}: {cause}")
        self.middleware = middleware
        self.hook = hook
        self.cause = cause


class MiddlewareChain(Middleware):
    """Calls every middleware in order, and keeps a failing one from stopping the block.

    A hook that raises while a job is handled raises ``HookError`` (the caller answers that
    job with it); one that raises outside a job (``on_idle``, ``on_worker_restart``,
    ``on_inherited``, ``commit_records``, ``records_due``, ``after_completion``) is logged
    and counted, and the chain goes on.
    """

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        self.middleware = tuple(middleware)
        self.errors = 0  # hooks that raised, for ``blocks`` and ``/metrics``
        self._quiet: set[int] = set()  # middleware whose ``records_due`` is failing
        self._logged: set[int] = set()  # and those whose failure was logged (once: per step)

    def _failed(self, m: Middleware, hook: str, exc: BaseException) -> HookError:
        self.errors += 1
        error = HookError(type(m).__name__, hook, exc)
        _log.error("%s", error, exc_info=exc)
        return error

    def _each(self, hook: str, *args: Any) -> Iterator[Any]:
        """Each middleware's answer to a job hook, in order; ``HookError`` if one raises."""
        for m in self.middleware:
            try:
                answer = getattr(m, hook)(*args)
            # Anything, SystemExit included: a job's hook must only ever fail that job.
            except BaseException as exc:
                raise self._failed(m, hook, exc) from exc
            yield answer

    def _all(self, hook: str, *args: Any) -> None:
        """Call a hook that is not about one job on every middleware; failures are logged."""
        for m in self.middleware:
            try:
                getattr(m, hook)(*args)
            except Exception as exc:
                self._failed(m, hook, exc)

    def on_received(self, key: str | None, task: str | None) -> None:
        for _ in self._each("on_received", key, task):
            pass

    def placement(self, assignment: Assignment) -> Forward | RequestError | None:
        return next((d for d in self._each("placement", assignment) if d is not None), None)

    def before_dispatch(self, assignment: Assignment) -> None:
        for _ in self._each("before_dispatch", assignment):
            pass

    def on_attempt_failed(self, assignment: Assignment, failure: Failure) -> None:
        for _ in self._each("on_attempt_failed", assignment, failure):
            pass

    def retry_delay(self, assignment: Assignment, failure: Failure) -> float | None:
        delays = self._each("retry_delay", assignment, failure)
        return next((d for d in delays if d is not None), None)

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        records: list[OutboxRecord] = []
        for m in self.middleware:
            try:  # what a hook returns is read inside the guard too (None, a failing generator)
                records.extend(m.extra_records(completion, request_value))
            except BaseException as exc:
                raise self._failed(m, "extra_records", exc) from exc
        return records

    def extra_records_despite(
        self, completion: Completion, request_value: bytes | None
    ) -> list[OutboxRecord]:
        """The records of every middleware whose ``extra_records`` works; the ones that fail
        (already logged and counted when they first did) are left out."""
        records: list[OutboxRecord] = []
        for m in self.middleware:
            try:
                records.extend(m.extra_records(completion, request_value))
            except BaseException:
                continue
        return records

    def commit_records(self, in_hand: Mapping[str, float | None]) -> list[OutboxRecord]:
        """Every middleware's ``commit_records``; one that fails is logged, counted and
        left out (the transaction carries answers, which must not wait on a hook)."""
        records: list[OutboxRecord] = []
        for m in self.middleware:
            try:
                records.extend(m.commit_records(in_hand))
            except Exception as exc:
                self._failed(m, "commit_records", exc)
        return records

    def records_due(self) -> float | None:
        """The earliest of every middleware's ``records_due``. One that raises, or answers
        neither ``None`` nor a finite number (a NaN would never be due), is taken as no
        need; it is counted when it starts failing (not at every step), and logged the first
        time."""
        due: float | None = None
        for m in self.middleware:
            try:
                when = _moment(m.records_due())
            except Exception as exc:
                if id(m) not in self._quiet:  # a new streak: counted; its cause logged once
                    self._quiet.add(id(m))
                    self.errors += 1
                    if id(m) not in self._logged:
                        self._logged.add(id(m))
                        _log.error("%s", HookError(type(m).__name__, "records_due", exc),
                                   exc_info=exc)  # fmt: skip
                continue
            self._quiet.discard(id(m))
            if when is not None and (due is None or when < due):
                due = when
        return due

    def on_inherited(self, key: str) -> None:
        self._all("on_inherited", key)

    def on_progress(self, assignment: Assignment, progress: Progress, started_at: float) -> None:
        self._all("on_progress", assignment, progress, started_at)

    def on_worker_restart(self) -> None:
        self._all("on_worker_restart")

    def after_completion(self, completion: Completion) -> None:
        self._all("after_completion", completion)

    def on_idle(self) -> None:
        self._all("on_idle")


def _moment(when: object) -> float | None:
    """``when`` as ``records_due`` must answer it: ``None`` or a finite number."""
    if when is None:
        return None
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise TypeError(f"records_due must return None or a finite number, not {when!r}")
    return float(when)
