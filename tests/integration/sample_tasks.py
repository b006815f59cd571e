"""User tasks for the tests, loaded through COMPUTEINFRA_TASKS like a user's own module."""

from __future__ import annotations

import os
import signal
import time

from pydantic import BaseModel, ConfigDict

from computeinfra import Retry, TaskContext, task


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = "boom"


@task("explode", payload=Message)
def explode(payload: Message, ctx: TaskContext) -> None:
    """Raise inside the task: the job must end as failed with this error."""
    raise ValueError(payload.message)


@task("always-crash", payload=Message)
def always_crash(payload: Message, ctx: TaskContext) -> None:
    """Kill the worker process on every attempt: a poison job."""
    os.kill(os.getpid(), signal.SIGKILL)


@task("where", payload=Message)
def where(payload: Message, ctx: TaskContext) -> dict[str, int]:
    """Report the worker pid, so tests can see which process ran a job."""
    ctx.write_bytes("where.txt", str(os.getpid()).encode())
    return {"pid": os.getpid()}


class Flaky(BaseModel):
    model_config = ConfigDict(extra="forbid")
    succeed_on: int = 3


@task("flaky", payload=Flaky)
def flaky(payload: Flaky, ctx: TaskContext) -> dict[str, int]:
    """Ask to be retried until attempt ``succeed_on``."""
    if ctx.attempt < payload.succeed_on:
        raise Retry(f"not yet (attempt {ctx.attempt})")
    return {"attempt": ctx.attempt}


class Gate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    timeout: float = 60.0


@task("gate", payload=Gate, max_attempts=1)
def gate(payload: Gate, ctx: TaskContext) -> dict[str, bool]:
    """Run until the file ``path`` exists: a test holds a job in the running state with it."""
    deadline = time.monotonic() + payload.timeout
    while not os.path.exists(payload.path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{payload.path} did not appear within {payload.timeout} s")
        time.sleep(0.05)  # the task's own polling, not a test synchronising on time
    return {"opened": True}


@task("special-where", payload=Message, resources={"special": 1})
def special_where(payload: Message, ctx: TaskContext) -> dict[str, int]:
    """Runs only where a node has the custom resource `special` (tests/test_scale_out.py)."""
    return {"pid": os.getpid()}


@task("needs-unicorn", payload=Message, resources={"unicorn": 1})
def needs_unicorn(payload: Message, ctx: TaskContext) -> None:
    """Needs a resource no node has: its jobs must be rejected, never left waiting."""


class Size(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 5_000_000


@task("big-result", payload=Size)
def big_result(payload: Size, ctx: TaskContext) -> dict[str, str]:
    """Return a result of ``size`` characters: over the result limit, and over Kafka's."""
    return {"blob": "x" * payload.size}


@task("not-json", payload=Message)
def not_json(payload: Message, ctx: TaskContext) -> object:
    """Return a value JSON cannot carry."""
    return {"handle": object()}


class Spin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 60.0


@task("spin", payload=Spin, max_attempts=1)
def spin(payload: Spin, ctx: TaskContext) -> dict[str, int]:
    """A CPU loop that looks at nothing: a cancel must stop it without its help."""
    end, loops = time.monotonic() + payload.seconds, 0
    while time.monotonic() < end:
        loops += 1
    return {"loops": loops}


class Parts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    parts: int = 2
    timeout: float = 60.0


@task("write-then-wait", payload=Parts, max_attempts=1)
def write_then_wait(payload: Parts, ctx: TaskContext) -> dict[str, int]:
    """Write ``parts`` whole files, begin one more, and hold it open until ``path``
    exists: what a cancelled job leaves behind."""
    for index in range(payload.parts):
        ctx.write_bytes(f"part-{index}.txt", b"whole")
    with ctx.open_output("last.bin") as handle:
        handle.write(b"half")
        deadline = time.monotonic() + payload.timeout
        while not os.path.exists(payload.path) and time.monotonic() < deadline:
            time.sleep(0.05)  # the task's own polling, not a test synchronising on time
    return {"parts": payload.parts}


class Polite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 600.0


@task("polite", payload=Polite, max_attempts=1)
def polite(payload: Polite, ctx: TaskContext) -> dict[str, int]:
    """Write a file, then work in steps and stop cleanly at the first step after a cancel."""
    ctx.write_bytes("begun.txt", b"begun")
    end, steps = time.monotonic() + payload.seconds, 0
    while time.monotonic() < end:
        ctx.raise_if_cancelled()
        time.sleep(0.05)  # one step of the task's own work
        steps += 1
    return {"steps": steps}


@task("short-limit", payload=Spin, time_limit=1, max_time_limit=30, max_attempts=1)
def short_limit(payload: Spin, ctx: TaskContext) -> dict[str, float]:
    """Sleep ``seconds``, under a 1 s default limit that a request may raise to 30 s."""
    time.sleep(payload.seconds)  # the job itself
    return {"slept": payload.seconds}


@task("unlimited", payload=Spin, time_limit=None, max_attempts=1)
def unlimited(payload: Spin, ctx: TaskContext) -> dict[str, float]:
    """Sleep ``seconds``, with no time limit at all."""
    time.sleep(payload.seconds)  # the job itself
    return {"slept": payload.seconds}
