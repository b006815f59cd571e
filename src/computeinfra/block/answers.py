"""Answers: the one place a ``Completion`` is built, and the records that carry it.

A record's answer is its completion on ``completedJobs`` plus what middleware adds in the
same transaction (its terminal status, a dead letter). Every path that ends a job — it ran,
it was rejected at intake, a hook failed on it, a bug of ours — comes through here.
"""

from __future__ import annotations

from collections.abc import Sequence

from computeinfra.errors import RequestError
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    CancelRequest,
    Completion,
    ErrorInfo,
    FailureKind,
    Status,
    encode_completion,
)

from .jobs import Assignment, Outcome
from .middleware import MiddlewareChain
from .records import OutboxRecord

__all__ = [
    "MAX_ANSWER_RECORD_BYTES",
    "answer_records",
    "cancelled",
    "cancelled_instead",
    "complete",
    "completion_record",
    "failed",
    "refused",
    "reject",
    "stripped",
    "too_large",
]

# librdkafka refuses a record over ``message.max.bytes`` (1,000,000 by default) at produce(),
# and one such record would fail its whole transaction, again and again. An answer record is
# kept under this, key and headers included, with room to spare for the batch's framing.
MAX_ANSWER_RECORD_BYTES = 900_000


def complete(
    assignment: Assignment, outcome: Outcome, *, block: int | None, node: str | None
) -> Completion:
    return Completion(
        key=assignment.key,
        task=assignment.task,
        status=outcome.status,
        result_dir=assignment.result_dir,
        outputs=list(outcome.outputs),
        result=outcome.result,
        error=outcome.error,
        attempts=assignment.attempt,
        submitted_at=assignment.submitted_at,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        block=block,
        node=node,
    )


def failed(
    assignment: Assignment,
    kind: FailureKind,
    message: str,
    *,
    attempts: int,
    started_at: float | None = None,
    block: int | None = None,
    node: str | None = None,
) -> Completion:
    """A job that failed for a reason of the system's (``kind``), not of its task's code."""
    return Completion(
        key=assignment.key,
        task=assignment.task,
        status=Status.FAILED,
        result_dir=assignment.result_dir,
        error=ErrorInfo(type=kind, message=message),
        attempts=attempts,
        submitted_at=assignment.submitted_at,
        started_at=started_at,
        block=block,
        node=node,
    )


def cancelled(
    assignment: Assignment,
    cancel: CancelRequest,
    *,
    attempts: int,
    started_at: float | None = None,
    block: int | None = None,
    node: str | None = None,
) -> Completion:
    """A job cancelled (``attempts``: those it made, the one stopped included)."""
    return Completion(
        key=assignment.key,
        task=assignment.task,
        status=Status.CANCELLED,
        result_dir=assignment.result_dir,
        error=ErrorInfo(type=FailureKind.CANCELLED, message=_cancel_message(cancel)),
        attempts=attempts,
        submitted_at=assignment.submitted_at,
        started_at=started_at,
        block=block,
        node=node,
    )


def reject(
    key: str,
    error: RequestError,
    *,
    task: str | None,
    result_dir: str | None,
    submitted_at: float | None,
    block: int | None = None,
    node: str | None = None,
) -> Completion:
    return Completion(
        key=key,
        task=task,
        status=Status.REJECTED,
        result_dir=result_dir,
        error=ErrorInfo(type=type(error).__name__, message=str(error), field=error.field),
        attempts=0,
        submitted_at=submitted_at,
        block=block,
        node=node,
    )


def record_size(record: OutboxRecord) -> int:
    headers = sum(len(name) + len(value) for name, value in record.headers)
    return len(record.value) + len(record.key or b"") + headers


def too_large(completion: Completion, size: int) -> Completion:
    """The answer to a job whose completion would be ``size`` bytes, over what Kafka takes:
    ``failed`` with ``ResultTooLarge``, without the result and the outputs that made it so."""
    message = (
        f"the job's completion would be {size} bytes, over the {MAX_ANSWER_RECORD_BYTES} a "
        "Kafka record may carry here; return a smaller result (COMPUTEINFRA_MAX_RESULT_BYTES) "
        "and write large outputs to files"
    )
    return _failed_instead(completion, FailureKind.RESULT_TOO_LARGE, message)


def refused(completion: Completion, why: str) -> Completion:
    """The answer to a job whose answer Kafka refused for good (``why``, its error):
    ``failed`` with ``AnswerRefused``, without the result and outputs it carried."""
    message = (
        f"the job ended {completion.status}, but Kafka refused its answer ({why}); a "
        "topic's max.message.bytes may be lower than answers need (computeinfra doctor)"
    )
    return _failed_instead(completion, FailureKind.ANSWER_REFUSED, message)


def _failed_instead(
    completion: Completion, kind: FailureKind, message: str, status: Status = Status.FAILED
) -> Completion:
    """``completion`` made ``failed`` (or ``status``) for a reason of the system's, without
    the result and outputs that could not travel."""
    error = ErrorInfo(type=kind, message=message)
    update: dict[str, object] = {
        "status": status,
        "result": None,
        "outputs": [],
        "error": error,
    }
    return completion.model_copy(update=update)


def cancelled_instead(completion: Completion, cancel: CancelRequest) -> Completion:
    """``completion``'s job answered ``cancelled`` instead: its cancel was read before the
    answer committed. The attempts it made still count."""
    message = _cancel_message(cancel)
    return _failed_instead(completion, FailureKind.CANCELLED, message, Status.CANCELLED)


def _cancel_message(cancel: CancelRequest) -> str:
    return f"cancelled on request: {cancel.reason}" if cancel.reason else "cancelled on request"


# What is kept of a record's value when the record is too large to copy as it is.
VALUE_HEAD_BYTES = 256
VALUE_HEAD_HEADER = "computeinfra.value-head"
REASON = "computeinfra.reason"


def stripped(record: OutboxRecord, why: str) -> OutboxRecord:
    """``record`` without its value (a copy Kafka refused, ``why``), saying so in headers:
    the value's first bytes and size, so an operator can still tell what it was."""
    reasons = [value.decode(errors="replace") for name, value in record.headers if name == REASON]
    reason = "; ".join([*reasons, f"the value is too large to copy ({why})"])
    headers = [
        *(h for h in record.headers if h[0] != REASON),
        (REASON, reason.encode()),
        (VALUE_HEAD_HEADER, record.value[:VALUE_HEAD_BYTES]),
        ("computeinfra.value-bytes", str(len(record.value)).encode()),
    ]
    return OutboxRecord(record.topic, record.key, b"", headers, record.partition)


def is_stripped(record: OutboxRecord) -> bool:
    return any(name == VALUE_HEAD_HEADER for name, _ in record.headers)


def completion_record(key: bytes | None, completion: Completion) -> OutboxRecord:
    return OutboxRecord(COMPLETED_TOPIC, key, encode_completion(completion))


def answer_records(
    key: bytes | None, completion: Completion, request_value: bytes | None, hooks: MiddlewareChain
) -> list[OutboxRecord]:
    """The records that answer a job under its raw ``key``: its completion, then what
    middleware adds to it. Raises ``HookError`` if a middleware's ``extra_records`` does."""
    record = completion_record(key, completion)
    extra: Sequence[OutboxRecord] = hooks.extra_records(completion, request_value)
    return [record, *extra]
