"""``sleep``: waits, writes nothing. The stand-in for real work in tests and benchmarks."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from computeinfra.tasks.context import TaskContext
from computeinfra.tasks.registry import task

MAX_SLEEP_SECONDS = 3000


class SleepPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(ge=0, le=MAX_SLEEP_SECONDS, description="How long to sleep.")


@task("sleep", payload=SleepPayload, time_limit=3600, max_time_limit=7 * 24 * 3600)
def sleep(payload: SleepPayload, ctx: TaskContext) -> dict[str, float]:
    """Sleep for ``seconds``, saying its progress every second; mimics a job that takes
    time (and looks at nothing else: a cancel must stop it all the same)."""
    end = time.monotonic() + payload.seconds
    while (left := end - time.monotonic()) > 0:
        # Clamped, not rounded: a rounded value can pass the total and fail the job.
        ctx.progress(max(payload.seconds - left, 0.0), payload.seconds, "sleeping")
        time.sleep(min(1.0, left))
    return {"slept": payload.seconds}
