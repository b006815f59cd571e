"""Intake: turn a raw ``pendingJobs`` record into an ``Assignment``, or say why not."""

from __future__ import annotations

from computeinfra.config import Settings
from computeinfra.errors import RequestError
from computeinfra.paths import resolve_result_dir
from computeinfra.protocol import JobRequest, decode_request, key_problem
from computeinfra.tasks.context import InputRoots
from computeinfra.tasks.registry import TaskRegistry

from .jobs import Assignment

__all__ = ["admit"]


def _check_size(value: bytes | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise RequestError(
            f"the request is {len(value)} bytes; the limit is {limit} bytes "
            "(COMPUTEINFRA_MAX_REQUEST_BYTES). Pass large data as input files, not inline."
        )


def admit(
    key: bytes,
    value: bytes | None,
    record_time: float | None,
    registry: TaskRegistry,
    settings: Settings,
) -> tuple[JobRequest | None, Assignment | RequestError]:
    """Validate one record. Returns the parsed request (if it parsed) and the verdict."""
    request: JobRequest | None = None
    try:
        problem = key_problem(key)
        if problem:
            raise RequestError(problem, field="key")
        _check_size(value, settings.max_request_bytes)
        request = decode_request(value)
        task = registry.get(request.task)
        resolve_result_dir(settings.results_root, request.result_dir)
        payload = task.validate(request.payload, InputRoots(settings.input_roots))
    except RequestError as exc:
        return request, exc
    return request, Assignment(
        key=key.decode(),
        task=task.name,
        payload=payload,
        result_dir=request.result_dir,
        submitted_at=request.submitted_at if request.submitted_at is not None else record_time,
        max_attempts=request.max_attempts or task.max_attempts or settings.max_attempts,
        time_limit=min(request.time_limit or task.time_limit, task.time_limit),
    )
