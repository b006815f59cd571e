"""Supervisor middleware: cross-cutting policies as hooks, one policy per module.

Like Dramatiq's middleware, each hook is called in order for every job; the supervisor's
loop stays free of policy branches. Hooks that decide something return ``None`` for
"no opinion"; the first answer wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from computeinfra.protocol import Completion

if TYPE_CHECKING:
    from computeinfra.cluster.jobs import Assignment

__all__ = ["Middleware", "MiddlewareChain"]


class Middleware:
    """Base class; override only the hooks a policy needs."""

    def on_received(self, key: str | None, task: str | None) -> None:
        """A record was consumed (valid or not)."""

    def before_dispatch(self, assignment: Assignment) -> None:
        """An attempt is about to be sent to the worker."""

    def on_worker_lost(self, assignment: Assignment, reason: str) -> None:
        """The worker process died during ``assignment``."""

    def should_redeliver(self, assignment: Assignment, reason: str) -> bool | None:
        """Whether to send ``assignment`` again after its worker died."""
        return None

    def after_completion(self, completion: Completion) -> None:
        """The terminal completion was published."""

    def on_idle(self) -> None:
        """The consumer polled and found nothing; a moment for periodic work."""


class MiddlewareChain(Middleware):
    """Calls every middleware in order."""

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        self.middleware = tuple(middleware)

    def on_received(self, key: str | None, task: str | None) -> None:
        for m in self.middleware:
            m.on_received(key, task)

    def before_dispatch(self, assignment: Assignment) -> None:
        for m in self.middleware:
            m.before_dispatch(assignment)

    def on_worker_lost(self, assignment: Assignment, reason: str) -> None:
        for m in self.middleware:
            m.on_worker_lost(assignment, reason)

    def should_redeliver(self, assignment: Assignment, reason: str) -> bool | None:
        for m in self.middleware:
            verdict = m.should_redeliver(assignment, reason)
            if verdict is not None:
                return verdict
        return None

    def after_completion(self, completion: Completion) -> None:
        for m in self.middleware:
            m.after_completion(completion)

    def on_idle(self) -> None:
        for m in self.middleware:
            m.on_idle()
