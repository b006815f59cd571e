"""Dead letters: a job that failed for good is copied, as submitted, to ``deadJobs``.

The copy is published in the same transaction as the ``failed`` completion, with headers
saying why, so an operator can inspect or replay it.
"""

from __future__ import annotations

from collections.abc import Sequence

from computeinfra.block.records import OutboxRecord
from computeinfra.protocol import DEAD_TOPIC, Completion, Status

from . import Middleware

__all__ = ["DeadLetterFailures", "dead_letter_headers"]


def dead_letter_headers(reason: str, **extra: str) -> list[tuple[str, bytes]]:
    pairs = {"reason": reason, **extra}
    return [(f"computeinfra.{name}", value.encode()) for name, value in pairs.items()]


class DeadLetterFailures(Middleware):
    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        if completion.status is not Status.FAILED:
            return ()
        error = completion.error
        reason = f"{error.type}: {error.message}" if error else "failed"
        headers = dead_letter_headers(
            reason, attempts=str(completion.attempts), task=completion.task or ""
        )
        return [OutboxRecord(DEAD_TOPIC, completion.key.encode(), request_value or b"", headers)]
