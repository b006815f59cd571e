"""A user task module, as shown in the README.

Run it on the cluster with:
    COMPUTEINFRA_TASKS=my_tasks PYTHONPATH=examples make run
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from computeinfra import TaskContext, task


class ShoutPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=10_000, description="What to shout.")
    times: int = Field(default=1, ge=1, le=100, description="How many times.")


@task("shout", payload=ShoutPayload)
def shout(payload: ShoutPayload, ctx: TaskContext) -> dict[str, int]:
    """Upper-case some text and write it to shout.txt."""
    loud = "\n".join([payload.text.upper()] * payload.times)
    ctx.write_bytes("shout.txt", loud.encode())  # atomic: temp name, then rename
    return {"characters": len(loud)}
