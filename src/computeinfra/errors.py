"""The exception tree. Every error computeinfra raises derives from ``ComputeInfraError``.

::

    ComputeInfraError
    ├── ConfigError          a setting (env var or flag) has a value we cannot use
    ├── BrokerError          the local Kafka broker could not be fetched, started or stopped
    ├── KafkaError           talking to Kafka failed (produce, consume, admin)
    ├── ClusterError         the Ray cluster or its actors are missing or unreachable
    ├── TaskError            a task definition is invalid (bad registration, import failure)
    ├── Retry                raised by a task: this attempt failed, try the job again later
    ├── Cancelled            raised by ``ctx.raise_if_cancelled()``: the job was cancelled
    ├── RequestError         a job request is invalid; ``reason`` names the field or problem
    │   └── PathError        a path escapes its root or does not exist
    └── JobError             a job ended without success (carries its ``Completion``)
        └── JobTimeout       waiting for a job's completion took longer than asked
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from computeinfra.protocol import Completion

__all__ = [
    "BrokerError",
    "Cancelled",
    "ClusterError",
    "ComputeInfraError",
    "ConfigError",
    "JobError",
    "JobTimeout",
    "KafkaError",
    "PathError",
    "RequestError",
    "Retry",
    "TaskError",
    "UnknownJob",
]


class ComputeInfraError(Exception):
    """Root of every error raised by computeinfra."""


class ConfigError(ComputeInfraError):
    """A setting has a value that cannot be used."""


class BrokerError(ComputeInfraError):
    """The local Kafka broker could not be fetched, started or stopped."""


class KafkaError(ComputeInfraError):
    """A Kafka operation failed."""


class ClusterError(ComputeInfraError):
    """The Ray cluster, or an actor in it, cannot be reached."""


class TaskError(ComputeInfraError):
    """A task definition is invalid or could not be imported."""


class Retry(ComputeInfraError):
    """Raise from a task when the failure is worth another attempt (a busy service, a lock).

    The job is retried with exponential backoff until its ``max_attempts`` are spent.
    """


class Cancelled(ComputeInfraError):
    """Raised by ``TaskContext.raise_if_cancelled``: the job was cancelled while it ran. Its
    completion says ``cancelled`` however the attempt ends."""


class RequestError(ComputeInfraError):
    """A job request is invalid. ``field`` is the offending field, when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PathError(RequestError):
    """A path escapes the root it must stay in, or does not exist."""


class UnknownJob(RequestError):
    """No job has this key: nothing was submitted under it (or it is no longer kept)."""

    def __init__(self, keys: list[str]) -> None:
        shown = ", ".join(repr(k) for k in keys[:5]) + (" …" if len(keys) > 5 else "")
        super().__init__(f"no job has the key {shown}: nothing was written")
        self.keys = keys


class JobError(ComputeInfraError):
    """A job ended as ``failed``, ``rejected`` or ``cancelled``."""

    def __init__(self, completion: Completion) -> None:
        error: Any = completion.error
        detail = f"{error.type}: {error.message}" if error else completion.status
        super().__init__(f"job {completion.key!r} {completion.status}: {detail}")
        self.completion = completion


class JobTimeout(ComputeInfraError, TimeoutError):
    """No completion arrived for a job within the time asked for."""
