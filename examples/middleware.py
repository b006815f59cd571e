"""A user middleware: log every job's attempts and refuse jobs of a blocked task.

Run it with the stack::

    COMPUTEINFRA_MIDDLEWARE=middleware:AuditTrail PYTHONPATH=examples make run

Hooks are called in order after the built-in middleware (placement, reporting, retries,
dead letters, status). A hook that raises while a job is handled gives that job one
``failed`` completion (``error.type`` ``MiddlewareError``, naming ``AuditTrail`` and the
hook); one that raises outside a job is logged and counted. Neither stops the block.
"""

from __future__ import annotations

import logging

from computeinfra.block.jobs import Assignment, Failure
from computeinfra.block.middleware import Middleware
from computeinfra.protocol import Completion

_log = logging.getLogger("audit")
BLOCKED_TASKS = {"word-count"}


class AuditTrail(Middleware):
    def before_dispatch(self, assignment: Assignment) -> None:
        if assignment.task in BLOCKED_TASKS:
            # The job fails with this message; nothing else is affected.
            raise PermissionError(f"task {assignment.task!r} is blocked by policy")
        _log.info("attempt %d of %s (%s)", assignment.attempt, assignment.key, assignment.task)

    def on_attempt_failed(self, assignment: Assignment, failure: Failure) -> None:
        _log.warning("%s attempt %d failed: %s", assignment.key, assignment.attempt, failure.type)

    def after_completion(self, completion: Completion) -> None:
        _log.info("%s ended %s", completion.key, completion.status)
