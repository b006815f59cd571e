"""The wire format: topic names, the job request and completion records, and their codecs.

This module is the single owner of what crosses Kafka. Clients and the cluster both import
it; non-Python clients read ``docs/wire-format.md`` and the JSON Schemas generated from the
models here (``computeinfra schema``).

A request is the value of a ``pendingJobs`` record whose key is the job key. A completion is
the value of a ``completedJobs`` record with the same key.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from computeinfra.errors import RequestError

__all__ = [
    "ATTEMPTS_HEADER",
    "CANCEL_TOPIC",
    "COMPLETED_TOPIC",
    "DEAD_TOPIC",
    "HANDOVERS_HEADER",
    "JOB_STATUS_TOPIC",
    "LANE_PREFIX",
    "PENDING_TOPIC",
    "PROTOCOL_VERSION",
    "TERMINAL_STATES",
    "BlockState",
    "CancelRequest",
    "Completion",
    "ErrorInfo",
    "FailureKind",
    "JobRequest",
    "JobState",
    "JobStatus",
    "Output",
    "Progress",
    "Status",
    "TerminalState",
    "attempts_made",
    "decode_cancel",
    "decode_completion",
    "decode_job_status",
    "decode_request",
    "describe_validation_error",
    "encode_cancel",
    "encode_completion",
    "encode_job_status",
    "encode_request",
    "handed_over",
    "lane_topic",
    "named_task",
]

PROTOCOL_VERSION: Literal[1] = 1
PENDING_TOPIC = "pendingJobs"
COMPLETED_TOPIC = "completedJobs"
# Records that cannot be answered on completedJobs (no key to answer under) land here.
DEAD_TOPIC = "deadJobs"
# Requests for a task that needs resources (GPUs, a licence…) wait in the task's lane, read
# only by blocks whose node has them. Same record as on pendingJobs, forwarded unchanged.
LANE_PREFIX = f"{PENDING_TOPIC}.lane."
_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_TOPIC_CHARS = 249
# The last lifecycle step of each key (compacted): running, then the terminal state.
JOB_STATUS_TOPIC = "jobStatus"
# Cancellations (compacted), keyed by the job key: every block reads all of it, so that a
# cancel holds wherever and whenever the job's record is read.
CANCEL_TOPIC = "cancelJobs"
# On a pendingJobs record a block wrote again for another block to run (its workers were
# held by long jobs): how many times the job was handed over. The same job, not a new one.
HANDOVERS_HEADER = "computeinfra.handovers"
# On a record handed over by a block that stopped before the job ended (its drain ran out)
# or between its retries: the attempts the job had already made. Its next one counts on.
ATTEMPTS_HEADER = "computeinfra.attempts"

MAX_KEY_BYTES = 256
# Upper bounds that neither a task nor a request can exceed.
MAX_ATTEMPTS_CAP = 10
# A week: a task or a request may ask any limit up to it, or none (a task's ``time_limit=None``).
MAX_TIME_LIMIT_SECONDS = 7 * 24 * 3600.0


class JobState(StrEnum):
    """Where a job is in its life: ``pending`` and ``running``, then exactly one terminal
    state (``TerminalState``), which its completion carries."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


# The one enum of job states; ``Status`` is its name in the public API since version 0.1.
Status = JobState
TerminalState = Literal[JobState.SUCCEEDED, JobState.FAILED, JobState.REJECTED, JobState.CANCELLED]
# The states a completion can carry, in the order summaries list them.
TERMINAL_STATES: tuple[TerminalState, ...] = (
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.REJECTED,
    JobState.CANCELLED,
)


class FailureKind(StrEnum):
    """``error.type`` of a job that failed for a reason of the system's, not of its task's
    own code (a task's exception is named by its class)."""

    WORKER_LOST = "WorkerLost"  # the worker process died (killed, crashed, out of memory)
    TIME_LIMIT = "TimeLimitExceeded"  # an attempt ran past its time limit; its worker killed
    MIDDLEWARE = "MiddlewareError"  # a middleware hook raised while the job was handled
    RESULT_TOO_LARGE = "ResultTooLarge"  # the task's result (or its answer) is over the limit
    ANSWER_REFUSED = "AnswerRefused"  # Kafka refused the job's answer as it was (see message)
    RESULT_NOT_JSON = "ResultNotSerializable"  # the task returned a value JSON cannot carry
    PATH = "PathError"  # the result directory cannot be used (e.g. it names a file)
    WORKER_ERROR = "WorkerError"  # the call to the worker failed, not the task in it
    INTERNAL = "InternalError"  # a bug of ours; the job still gets its one answer
    CANCELLED = "Cancelled"  # not a failure: a ``cancelled`` completion's reason


class BlockState(StrEnum):
    """What a working block is doing, as ``computeinfra blocks`` and ``/metrics`` show it."""

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    RETRY_BACKOFF = "retry-backoff"
    RESTARTING_WORKER = "restarting-worker"
    STOPPING = "stopping"
    STOPPED = "stopped"
    # Its consume thread died; it is being restarted (the error says why).
    DEAD = "dead"
    # Its supervisor did not answer a status request (its actor is gone or restarting).
    UNREACHABLE = "unreachable"


MAX_TASK_CHARS = 200


class JobRequest(BaseModel):
    """What a client asks for: run ``task`` on ``payload``, write into ``result_dir``."""

    model_config = ConfigDict(frozen=True, extra="forbid", title="pendingJobs value")

    version: Literal[1] = Field(default=PROTOCOL_VERSION, description="Wire format version.")
    task: str = Field(min_length=1, max_length=MAX_TASK_CHARS, description="Registered task name.")
    payload: dict[str, Any] = Field(description="Task parameters; see the task's schema.")
    result_dir: str = Field(
        min_length=1,
        max_length=1024,
        description="Relative folder under the results root where outputs go.",
    )
    submitted_at: float | None = Field(
        default=None, description="Unix time (s) of submission; the record timestamp if absent."
    )
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ATTEMPTS_CAP,
        description="Attempts before the job fails; the task's default if absent.",
    )
    time_limit: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIME_LIMIT_SECONDS,
        description=(
            "Seconds one attempt may run, instead of the task's own limit: any value up to "
            "the task's max_time_limit."
        ),
    )
    replay_of: str | None = Field(
        default=None, max_length=250, description="The key of the dead letter this replays."
    )


class ErrorInfo(BaseModel):
    """Why a job did not succeed, in words a user can act on."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    type: str = Field(description="Error class, e.g. 'InvalidPayload', 'WorkerLost', 'ValueError'.")
    message: str
    field: str | None = Field(default=None, description="The request field at fault, if any.")
    traceback: str | None = Field(default=None, description="Last frames, for task errors.")


class Output(BaseModel):
    """One file a job wrote. Tasks may add fields (e.g. sizes) beside ``path`` and ``bytes``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    path: str = Field(description="Path relative to the results root.")
    bytes: int = Field(ge=0)


class Completion(BaseModel):
    """The one terminal event of a job, published on ``completedJobs`` under the job's key."""

    model_config = ConfigDict(
        frozen=True, title="completedJobs value", json_schema_serialization_defaults_required=True
    )

    version: Literal[1] = PROTOCOL_VERSION
    key: str
    task: str | None = Field(
        description="The task the request names; null when it names none readably."
    )
    status: TerminalState
    result_dir: str | None
    outputs: list[Output] = Field(default_factory=list)
    result: Any = Field(default=None, description="The task's JSON summary, if it returns one.")
    error: ErrorInfo | None = None
    attempts: int = Field(ge=0, description="Times the job was sent to a worker.")
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float = Field(default_factory=time.time)
    block: int | None = Field(default=None, description="Working block that answered.")
    node: str | None = Field(default=None, description="Ray node of that block.")

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCEEDED


def describe_validation_error(exc: ValidationError, prefix: str = "") -> tuple[str, str | None]:
    """Turn pydantic's report into one readable sentence and the first offending field."""
    parts: list[str] = []
    first_field: str | None = None
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        first_field = first_field or where or None
        parts.append(f"{where}: {err['msg']}" if where else str(err["msg"]))
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts), first_field


def encode_request(request: JobRequest) -> bytes:
    return request.model_dump_json(exclude_none=True).encode()


def named_task(raw: bytes | None) -> str | None:
    """The task a raw ``pendingJobs`` value names, whether or not it is a valid request
    (``None`` if it names none readably): a rejection answers under it and the analyzer
    counts the submission under it, so the two always agree. Only a name a request may
    carry: a longer one would make the rejection too large to send, and a lone surrogate
    (valid JSON, not UTF-8) one that cannot be written."""
    try:
        data = json.loads(raw or b"")
    except (ValueError, RecursionError):
        return None
    task = data.get("task") if isinstance(data, dict) else None
    if not isinstance(task, str) or not 0 < len(task) <= MAX_TASK_CHARS:
        return None
    try:
        task.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return task


def decode_request(raw: bytes | None) -> JobRequest:
    """Parse a ``pendingJobs`` value, raising ``RequestError`` that names the problem."""
    if raw is None or raw == b"":
        raise RequestError("the record has no value: expected a JSON job request")
    try:  # a valid request in one pass (1.6 µs, not 6); what is wrong is told below
        return JobRequest.model_validate_json(raw)
    except ValidationError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the value is not UTF-8 text: expected a JSON job request") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RequestError(f"the value is not valid JSON ({exc}); expected a job request") from None
    if not isinstance(data, dict):
        raise RequestError(f"the value is JSON {type(data).__name__}, expected an object")
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        message, field = describe_validation_error(exc)
        raise RequestError(message, field=field) from None


def encode_completion(completion: Completion) -> bytes:
    return completion.model_dump_json().encode()


def decode_completion(raw: bytes) -> Completion:
    return Completion.model_validate_json(raw)


def key_text(key: bytes) -> str:
    """The key as it appears in a completion's JSON; undecodable bytes are escaped, not lost."""
    return key.decode("utf-8", errors="backslashreplace")


def key_problem(key: bytes) -> str | None:
    """Why a non-empty key cannot name a job, or ``None`` when it can."""
    if len(key) > MAX_KEY_BYTES:
        return f"the key is {len(key)} bytes long; keys may be at most {MAX_KEY_BYTES} bytes"
    try:
        key.decode()
    except UnicodeDecodeError:
        return "the key is not UTF-8 text; use a printable text key"
    return None


class Progress(BaseModel):
    """How far a running job has got, as its task last said (``ctx.progress``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    done: float = Field(ge=0, description="Units of work done.")
    total: float | None = Field(default=None, ge=0, description="Units in all, if known.")
    message: str | None = Field(default=None, max_length=200, description="What it is doing.")
    at: float = Field(description="Unix time (s) the task said it.")


class JobStatus(BaseModel):
    """A lifecycle step of a job, published on the compacted ``jobStatus`` topic under its key.

    Supervisors write ``running`` once an attempt has been sent to a worker a while ago
    (``COMPUTEINFRA_RUNNING_STATUS_AFTER_MS``), and the terminal state in the same transaction
    as the completion whenever a ``running`` may be on the topic, so the topic's last value
    per key is the job's latest known state. A quicker job has no status at all; ``pending``
    is never written: it is the absence of a status and a completion.
    """

    model_config = ConfigDict(
        frozen=True, title="jobStatus value", json_schema_serialization_defaults_required=True
    )

    version: Literal[1] = PROTOCOL_VERSION
    key: str
    state: JobState
    task: str | None = None
    result_dir: str | None = None
    attempt: int = Field(default=0, ge=0, description="The attempt running, or attempts made.")
    max_attempts: int | None = None
    block: int | None = None
    node: str | None = None
    submitted_at: float | None = None
    started_at: float | None = Field(default=None, description="When this attempt was sent.")
    finished_at: float | None = None
    error: ErrorInfo | None = None
    progress: Progress | None = Field(default=None, description="While running, if told.")
    at: float = Field(default_factory=time.time, description="Unix time (s) of this step.")

    @property
    def terminal(self) -> bool:
        return self.state.terminal


def encode_job_status(status: JobStatus) -> bytes:
    return status.model_dump_json().encode()


def decode_job_status(raw: bytes) -> JobStatus:
    return JobStatus.model_validate_json(raw)


class CancelRequest(BaseModel):
    """Cancel the job whose key is this ``cancelJobs`` record's key.

    A job not yet sent to a worker never runs; one running is stopped; one that completed
    keeps its completion. The job's one completion then says ``cancelled``. A record with
    no value withdraws a cancel that no block has acted on yet.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", title="cancelJobs value")

    version: Literal[1] = PROTOCOL_VERSION
    requested_at: float = Field(
        default_factory=time.time, description="Unix time (s) the cancel was asked."
    )
    reason: str | None = Field(default=None, max_length=1000, description="Said in the answer.")
    submitted_at: float | None = Field(
        default=None,
        description=(
            "The submission it cancels (the job's submitted_at, else its record's time): a "
            "job submitted later under the same key is not cancelled. Absent: any job."
        ),
    )

    def applies_to(self, submitted_at: float | None) -> bool:
        """Whether this cancel names a job submitted at ``submitted_at`` (not a later one
        under the same key; a millisecond of slack for a record's time)."""
        if self.submitted_at is None or submitted_at is None:
            return True
        return submitted_at <= self.submitted_at + 0.001


def encode_cancel(cancel: CancelRequest) -> bytes:
    return cancel.model_dump_json(exclude_none=True).encode()


def decode_cancel(raw: bytes) -> CancelRequest:
    """Parse a ``cancelJobs`` value, raising ``RequestError`` that names the problem."""
    try:
        return CancelRequest.model_validate_json(raw)
    except ValidationError as exc:
        message, field = describe_validation_error(exc)
        raise RequestError(f"not a cancel request: {message}", field=field) from None


def lane_topic(task: str) -> str:
    """The lane topic of ``task``. Kafka allows few characters in topic names: a name with
    others (or too long) gets them replaced and a hash of the original, to stay unique."""
    safe = _TOPIC_UNSAFE.sub("_", task)
    if safe == task and len(LANE_PREFIX) + len(task) <= _MAX_TOPIC_CHARS:
        return LANE_PREFIX + task
    digest = hashlib.sha256(task.encode()).hexdigest()[:12]
    return f"{LANE_PREFIX}{safe[: _MAX_TOPIC_CHARS - len(LANE_PREFIX) - 13]}-{digest}"


def attempts_made(headers: Sequence[tuple[str, Any]] | Mapping[str, Any] | None) -> int:
    """The attempts a handed-over job had already made (``ATTEMPTS_HEADER``), or 0."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    value = next((v for name, v in pairs if name == ATTEMPTS_HEADER), None)
    try:
        made = int(value.decode() if isinstance(value, bytes) else value or 0)
    except (ValueError, UnicodeDecodeError):
        return 0  # not ours to read: the job counts from its first attempt
    return min(max(made, 0), MAX_ATTEMPTS_CAP)


def handed_over(headers: Sequence[tuple[str, Any]] | Mapping[str, Any] | None) -> bool:
    """Whether a ``pendingJobs`` record with these headers (as a Kafka client gives them:
    pairs or a mapping) is a job a block handed over, the same job again for another block:
    readers counting submissions skip it."""
    if isinstance(headers, Mapping):
        return HANDOVERS_HEADER in headers
    return any(header[0] == HANDOVERS_HEADER for header in headers or [])
