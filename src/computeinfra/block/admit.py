"""Intake: turn a raw ``pendingJobs`` record into an ``Assignment``, or say why not."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from computeinfra.config import Settings
from computeinfra.errors import RequestError
from computeinfra.paths import resolve_result_dir
from computeinfra.protocol import JobRequest, decode_request, key_problem
from computeinfra.tasks.context import InputRoots
from computeinfra.tasks.registry import Task, TaskRegistry

from .jobs import Assignment

__all__ = ["admit"]


@functools.lru_cache(maxsize=4)
def _resolved(root: Path) -> Path:
    """``root`` resolved once: intake only checks early what the worker, which writes,
    checks again against the root resolved afresh."""
    return root.resolve()


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
        resolve_result_dir(
            settings.results_root, request.result_dir, _resolved(settings.results_root)
        )
        payload = task.validate(request.payload, InputRoots(settings.input_roots))
        time_limit = _time_limit(request, task)
    except RequestError as exc:
        return request, exc
    return request, Assignment(
        key=key.decode(),
        task=task.name,
        payload=payload,
        result_dir=request.result_dir,
        submitted_at=request.submitted_at if request.submitted_at is not None else record_time,
        max_attempts=request.max_attempts or task.max_attempts or settings.max_attempts,
        time_limit=time_limit,
    )


def _time_limit(request: JobRequest, task: Task[Any]) -> float | None:
    """The request's limit if it asked for one the task allows, else the task's own."""
    if request.time_limit is None:
        return task.time_limit
    longest = task.longest_time_limit
    if longest is not None and request.time_limit > longest:
        raise RequestError(
            f"time_limit {request.time_limit:g} s is longer than task {task.name!r} allows "
            f"({longest:g} s; a task raises it with max_time_limit)",
            field="time_limit",
        )
    return request.time_limit
