"""The HTTP API under ``/api`` and ``/metrics``."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from computeinfra.client.cancel import CancelOutcome, cancel_jobs, cancel_unfinished
from computeinfra.client.dead_letters import dead_letters, replay
from computeinfra.client.lookup import JobLookup, job_state
from computeinfra.errors import PathError, RequestError, UnknownJob
from computeinfra.paths import resolve_result_dir
from computeinfra.protocol import JobRequest, JobState
from computeinfra.tasks.context import InputRoots
from computeinfra.web.board import view_of_lookup
from computeinfra.web.events import sse_stream
from computeinfra.web.metrics import CONTENT_TYPE, exposition
from computeinfra.web.models import (
    CancelAccepted,
    CancelConflict,
    CancelJob,
    CancelJobs,
    CancelReport,
    DeadLetterList,
    DeadLetterView,
    ErrorBody,
    JobList,
    JobView,
    Replayed,
    SubmitJob,
    Submitted,
    TaskInfo,
    Uploads,
)
from computeinfra.web.state import AppState, app_state
from computeinfra.web.uploads import result_file, save_upload

__all__ = ["router"]

MAX_LIST = 500
MAX_KEYS_PARAM = 20_000
State = Annotated[AppState, Depends(app_state)]
Responses = dict[int | str, dict[str, Any]]
_INVALID: Responses = {
    422: {"model": ErrorBody, "description": "The request is invalid; `field` says where."}
}
_MISSING: Responses = {404: {"model": ErrorBody, "description": "Nothing under that name."}}
_AWAY: Responses = {503: {"model": ErrorBody, "description": "Kafka or Ray cannot be reached."}}

router = APIRouter()


@router.get("/api/tasks", response_model=list[TaskInfo], tags=["jobs"])
def list_tasks(state: State) -> list[TaskInfo]:
    """Registered tasks and the JSON Schema of each one's payload."""
    return [
        TaskInfo(name=t.name, description=t.description, payload_schema=t.schema())
        for t in state.registry
    ]


@router.post(
    "/api/jobs", status_code=201, response_model=Submitted, responses={**_INVALID, **_AWAY},
    tags=["jobs"],
)  # fmt: skip
def submit_job(body: SubmitJob, state: State) -> Submitted:
    """Queue a job on pendingJobs and return its key. The payload is checked here first, so
    a mistake is a 422 naming the field rather than a rejected job."""
    task = state.registry.get(body.task)
    task.validate(body.payload, InputRoots(state.settings.core.input_roots))
    resolve_result_dir(state.settings.core.results_root, body.result_dir)
    client = state.client()
    handle = client.submit(body.task, body.payload, body.result_dir, key=body.key)
    client.flush()
    now = time.time()
    request = JobRequest(
        task=body.task, payload=body.payload, result_dir=body.result_dir, submitted_at=now
    )
    state.board.request(handle.key, request, now)
    return Submitted(key=handle.key)


@router.get("/api/jobs", response_model=JobList, responses=_INVALID, tags=["jobs"])
def list_jobs(
    state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST, description="At most this many.")] = 100,
    keys: Annotated[
        str | None,
        Query(max_length=MAX_KEYS_PARAM, description="Only these keys, comma-separated."),
    ] = None,
) -> JobList:
    """Recent jobs, newest first, as the app has seen them on the job topics."""
    wanted = [k for k in keys.split(",") if k] if keys is not None else None
    return JobList(jobs=state.board.recent(limit, wanted))


@router.get(
    "/api/jobs/{key}", response_model=JobView, responses={**_MISSING, **_AWAY}, tags=["jobs"]
)
def get_job(key: str, state: State) -> JobView:
    """A job's state, read from Kafka: its completion, else its last jobStatus, else pending."""
    known = state.board.get(key)
    if known is not None and known.completion is not None:
        return known
    found = view_of_lookup(job_state(state.settings.core.bootstrap_servers, key))
    if found is None:
        raise HTTPException(404, f"no job {key!r} on record; check the key")
    return found


@router.post(
    "/api/jobs/cancel", response_model=CancelReport, responses={**_MISSING, **_INVALID, **_AWAY},
    tags=["jobs"],
)  # fmt: skip
def cancel_many(body: CancelJobs, state: State) -> CancelReport:
    """Cancel many jobs: by `keys` (404, and nothing cancelled, if one names no job), or
    every unfinished job chosen by `task`, `state` or `all`."""
    bootstrap = state.settings.core.bootstrap_servers
    if body.keys is not None:
        try:
            outcomes = cancel_jobs(bootstrap, body.keys, reason=body.reason)
        except UnknownJob as exc:
            raise HTTPException(404, str(exc)) from None
    else:
        if body.task is not None:
            state.registry.get(body.task)  # an unknown task is a 422 naming it, not nothing
        outcomes = cancel_unfinished(
            bootstrap, state.settings.core.group, task=body.task,
            state=JobState(body.state) if body.state else None, reason=body.reason,
        )  # fmt: skip
    return CancelReport(
        requested=[_accepted(o) for o in outcomes if o.requested],
        completed=[_completed(o) for o in outcomes if not o.requested],
    )


def _accepted(outcome: CancelOutcome) -> CancelAccepted:
    said = f"cancel of {outcome.key!r} requested; it was {outcome.state.value}"
    return CancelAccepted(key=outcome.key, state=outcome.state, message=said)


def _completed(outcome: CancelOutcome) -> JobView:
    view = view_of_lookup(JobLookup(outcome.key, outcome.state, completion=outcome.completion))
    assert view is not None, "a job that completed has a view"
    return view


@router.post(
    "/api/jobs/{key}/cancel", status_code=202, response_model=CancelAccepted,
    responses={**_MISSING, **_INVALID, **_AWAY, 409: {
        "model": CancelConflict, "description": "It completed first; `job` says how."}},
    tags=["jobs"],
)  # fmt: skip
def cancel_job(key: str, state: State, body: CancelJob | None = None) -> Any:
    """Cancel a job: one waiting never runs, and its completion says `cancelled`. 409 with
    the job if it completed first (it keeps its completion); 404 if no job has the key."""
    reason = body.reason if body is not None else None
    try:
        (outcome,) = cancel_jobs(state.settings.core.bootstrap_servers, [key], reason=reason)
    except UnknownJob:
        raise HTTPException(404, f"no job {key!r} on record; check the key") from None
    if outcome.requested:
        return _accepted(outcome)
    message = f"job {key!r} {outcome.state.value} already"
    conflict = CancelConflict(message=message, job=_completed(outcome))
    return JSONResponse(jsonable_encoder(conflict), status_code=409)


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
    tags=["jobs"],
)
async def events(state: State) -> StreamingResponse:
    """Job changes as server-sent events: `state` (pending, running) and `completion` (with
    the completion), each carrying a job view as JSON."""
    return StreamingResponse(
        sse_stream(state.hub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/api/stats", responses=_AWAY, tags=["metrics"])
def stats(state: State) -> dict[str, Any]:
    """The analyzer's figures (`analyzer`) and every block's state (`blocks`)."""
    return state.figures.get()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    tags=["metrics"],
)
def metrics(state: State) -> Response:
    """Counters per task and status, queue wait and run time histograms, worker restarts,
    consumer lag, blocks busy."""
    return Response(exposition(state.figures), media_type=CONTENT_TYPE)


@router.post(
    "/api/uploads", status_code=201, response_model=Uploads,
    responses={**_INVALID, 413: {"model": ErrorBody, "description": "A file is too large."}},
    tags=["files"],
)  # fmt: skip
def upload(
    files: Annotated[list[UploadFile], File(description="Files to store.")], state: State
) -> Uploads:
    """Store files under the uploads root (inside an input root); use the returned paths in
    a payload, e.g. image-compression's `images`."""
    web = state.settings
    if not files:
        raise RequestError("no files in the upload; send them as form field 'files'", field="files")
    stored = [
        save_upload(
            web.uploads_root,
            web.core.input_roots,
            f.filename or "upload",
            f.file,
            web.max_upload_bytes,
        )
        for f in files
    ]
    return Uploads(files=stored)


@router.get(
    "/api/files/{path:path}", response_class=FileResponse, responses=_MISSING, tags=["files"]
)
def download(
    path: str,
    state: State,
    download: Annotated[bool, Query(description="Ask the browser to save it.")] = False,
) -> FileResponse:
    """A job's output file, by its path relative to the results root (as in `outputs`)."""
    try:
        found = result_file(state.settings.core.results_root, path)
    except PathError as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(found, filename=found.name if download else None)


@router.get("/api/health", tags=["metrics"])
def health(state: State) -> dict[str, Any]:
    """Whether the app has read the job topics up to now (its list is complete)."""
    feed = state.feed
    return {"ok": True, "caught_up": bool(feed and feed.caught_up.is_set())}


@router.get(
    "/api/dead-letters", response_model=DeadLetterList, responses=_AWAY, tags=["dead letters"]
)
def list_dead_letters(
    state: State,
    task: Annotated[str | None, Query(max_length=200, description="Only this task's.")] = None,
) -> DeadLetterList:
    """What deadJobs holds, oldest first: each job that failed for good (and each record
    that could not be a job), why, and the keys it was replayed as."""
    letters = dead_letters(state.settings.core.bootstrap_servers, task=task)
    views = [DeadLetterView(**d.to_json(), replayable=d.replayable) for d in letters]
    return DeadLetterList(dead_letters=views)


@router.post(
    "/api/dead-letters/{key}/replay", status_code=201, response_model=Replayed,
    responses={**_MISSING, **_INVALID, **_AWAY}, tags=["dead letters"],
)  # fmt: skip
def replay_dead_letter(key: str, state: State) -> Replayed:
    """Submit the dead job again under a new key (`KEY.r1`, `KEY.r2`…) carrying
    `replay_of`; 404 if no dead letter has the key, 422 if its request cannot be read."""
    try:
        (new,) = replay(state.settings.core.bootstrap_servers, [key]).values()
    except UnknownJob:
        raise HTTPException(404, f"no dead letter has the key {key!r}") from None
    return Replayed(key=new, replay_of=key)
