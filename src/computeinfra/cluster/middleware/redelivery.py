"""Redelivery: a job whose worker died is sent again, up to ``max_attempts`` in all."""

from __future__ import annotations

from computeinfra.cluster.jobs import Assignment

from . import Middleware

__all__ = ["RedeliverOnWorkerLoss"]


class RedeliverOnWorkerLoss(Middleware):
    def __init__(self, max_attempts: int) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts

    def should_redeliver(self, assignment: Assignment, reason: str) -> bool | None:
        return assignment.attempt < self.max_attempts
