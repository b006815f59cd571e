"""The HTTP API's request and response bodies (they make the served OpenAPI spec)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from computeinfra.protocol import Completion, ErrorInfo, JobState, JobStatus, Progress

__all__ = [
    "CancelAccepted",
    "CancelConflict",
    "CancelJob",
    "CancelJobs",
    "CancelReport",
    "DeadLetterList",
    "DeadLetterView",
    "ErrorBody",
    "JobList",
    "JobView",
    "Replayed",
    "SubmitJob",
    "Submitted",
    "TaskInfo",
    "Upload",
    "Uploads",
    "view_of_completion",
    "view_of_status",
]

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"


class ErrorBody(BaseModel):
    """Every error answer: a sentence saying what was wrong and what to do."""

    message: str
    field: str | None = Field(default=None, description="The request field at fault, if any.")
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="For 422: one entry per problem, FastAPI-style."
    )


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=200, description="A task from GET /api/tasks.")
    payload: dict[str, Any] = Field(description="The task's parameters; see its schema.")
    result_dir: str = Field(
        min_length=1, max_length=1024, description="Folder under the results root."
    )
    key: str | None = Field(
        default=None, pattern=KEY_PATTERN, description="Job key; generated if absent."
    )


class Submitted(BaseModel):
    key: str
    state: JobState = JobState.PENDING


class JobView(BaseModel):
    """A job as the app shows it: its latest state, and its completion once it has one."""

    model_config = ConfigDict(frozen=True)

    key: str
    state: JobState
    task: str | None = None
    attempt: int = 0
    max_attempts: int | None = None
    block: int | None = None
    result_dir: str | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: ErrorInfo | None = None
    progress: Progress | None = Field(default=None, description="While running, if told.")
    updated_at: float | None = None
    completion: Completion | None = None


class JobList(BaseModel):
    jobs: list[JobView]


class CancelJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None, max_length=1000, description="Said in the job's completion."
    )


class CancelAccepted(BaseModel):
    key: str
    state: JobState = Field(description="What the job was when the cancel was asked.")
    message: str


class CancelJobs(CancelJob):
    """Jobs to cancel: by ``keys``, or chosen by ``task``, ``state`` or ``all``."""

    keys: list[str] | None = Field(
        default=None, min_length=1, max_length=1000, description="These jobs (no filter then)."
    )
    task: str | None = Field(default=None, description="Every unfinished job of this task.")
    state: Literal["pending", "running"] | None = Field(
        default=None, description="Only unfinished jobs in this state."
    )
    all: bool = Field(default=False, description="Every unfinished job.")

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.keys is not None) == bool(self.task or self.state or self.all):
            raise ValueError("name jobs by `keys`, or choose them with `task`, `state` or `all`")
        return self


class CancelReport(BaseModel):
    requested: list[CancelAccepted] = Field(description="Cancels written, one per job.")
    completed: list[JobView] = Field(
        description="Jobs named by key that had completed: they keep their completion."
    )


class CancelConflict(ErrorBody):
    """The job completed before its cancel: it keeps its completion."""

    job: JobView


class DeadLetterView(BaseModel):
    key: str | None = Field(description="The job's key; null for a record that had none.")
    task: str | None
    reason: str = Field(description="Why it is on deadJobs.")
    attempts: int | None
    at: float = Field(description="Unix time (s) it was dead-lettered.")
    replayed_as: list[str] = Field(description="The keys it was replayed as, oldest first.")
    replayable: bool = Field(description="Whether its request can be submitted again.")


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterView]


class Replayed(BaseModel):
    key: str = Field(description="The new job's key.")
    replay_of: str


class TaskInfo(BaseModel):
    name: str
    description: str
    payload_schema: dict[str, Any]


class Upload(BaseModel):
    name: str = Field(description="The file name as stored.")
    path: str = Field(description="Absolute path to put in a payload (inside an input root).")
    bytes: int


class Uploads(BaseModel):
    files: list[Upload]


def view_of_completion(completion: Completion) -> JobView:
    return JobView(
        key=completion.key,
        state=JobState(completion.status.value),
        task=completion.task,
        attempt=completion.attempts,
        block=completion.block,
        result_dir=completion.result_dir,
        submitted_at=completion.submitted_at,
        started_at=completion.started_at,
        finished_at=completion.finished_at,
        error=completion.error,
        updated_at=completion.finished_at,
        completion=completion,
    )


def view_of_status(status: JobStatus) -> JobView:
    return JobView(
        key=status.key,
        state=status.state,
        task=status.task,
        attempt=status.attempt,
        max_attempts=status.max_attempts,
        block=status.block,
        result_dir=status.result_dir,
        submitted_at=status.submitted_at,
        started_at=status.started_at,
        finished_at=status.finished_at,
        error=status.error,
        progress=status.progress if status.state is JobState.RUNNING else None,
        updated_at=status.at,
    )
