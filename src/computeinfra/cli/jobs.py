"""Job commands: ``submit``, ``watch``, ``status``, ``cancel``."""

from __future__ import annotations

import json
import queue
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from confluent_kafka import Message
from rich.markup import escape

from computeinfra.client.cancel import CancelOutcome, cancel_jobs, cancel_unfinished
from computeinfra.client.lookup import job_state
from computeinfra.client.sdk import Client
from computeinfra.config import Settings
from computeinfra.errors import JobTimeout, RequestError
from computeinfra.kafka.admin import check_reachable
from computeinfra.kafka.follow import BEGINNING, END, TopicFollower
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    JOB_STATUS_TOPIC,
    JobState,
    decode_completion,
    decode_job_status,
)

from .batch import read_jsonl, submit_many
from .output import console, err_console, notification_line, print_json

__all__ = ["register"]

EXIT_FAILED = 1
EXIT_TIMEOUT = 3
# How often `watch` wakes while nothing arrives, so Ctrl-C is served promptly.
WATCH_WAKE_SECONDS = 0.5


def _read_payload(raw: str) -> dict[str, Any]:
    """``--payload`` takes JSON text, or ``@file`` holding JSON."""
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text()
        except OSError as exc:
            raise RequestError(f"cannot read payload file {raw[1:]!r}: {exc.strerror}") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"--payload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError("--payload must be a JSON object, e.g. '{\"seconds\": 1}'")
    return payload


def submit(
    task: Annotated[str, typer.Argument(help="Task name; see `computeinfra tasks`.")],
    payload: Annotated[
        str, typer.Option(help="Payload as JSON, @FILE holding JSON, or @FILE.jsonl: one per line.")
    ] = "{}",
    result_dir: Annotated[str, typer.Option(help="Folder under the results root.")] = "default",
    key: Annotated[str | None, typer.Option(help="Job key; generated if absent.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait and print the completion as JSON.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait with --wait.")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Submit the payload this many times.")] = 1,
    time_limit: Annotated[
        float | None,
        typer.Option(help="Seconds per attempt; up to the task's max_time_limit (`tasks`)."),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option(help="Attempts before the job fails (the task's by default).")
    ] = None,
) -> None:
    """Submit a job and print its key.

    With --wait, print the completion as JSON and exit 0 only if the job succeeded. Many jobs
    (--repeat N, or --payload @FILE.jsonl) print one key each; with --wait, a progress bar
    and then a summary table.
    """
    settings = Settings.from_env()
    many = payload.startswith("@") and payload.endswith(".jsonl")
    payloads = read_jsonl(payload[1:]) if many else [_read_payload(payload)] * repeat
    check_reachable(settings.bootstrap_servers)
    limits: dict[str, Any] = {"time_limit": time_limit, "max_attempts": max_attempts}
    if len(payloads) > 1 or many:
        with Client(settings=settings) as client:
            code = submit_many(
                client,
                task,
                payloads * (repeat if many else 1),
                result_dir,
                key_prefix=key,
                wait=wait,
                timeout=timeout,
                limits=limits,
            )
        raise typer.Exit(code)
    body = payloads[0]
    with Client(settings=settings) as client:
        handle = client.submit(task, body, result_dir, key=key, **limits)
        client.flush()
        if not wait:
            print(handle.key)
            return
        err_console.print(f"submitted {handle.key}, waiting…")
        follower = _show_progress(settings, handle.key)
        try:
            completion = handle.completion(timeout)
        except JobTimeout as exc:
            err_console.print(
                f"[yellow]{exc}[/]; it may still complete: `computeinfra status {handle.key}`"
            )
            raise typer.Exit(EXIT_TIMEOUT) from None
        finally:
            follower.stop()
    print_json(completion.model_dump(mode="json"))
    if not completion.ok:
        raise typer.Exit(EXIT_FAILED)


def _show_progress(settings: Settings, key: str) -> TopicFollower:
    """Print on stderr each progress the job ``key`` tells while it runs (``jobStatus``)."""
    raw_key = key.encode()

    def told(message: Message) -> None:
        if message.key() != raw_key:
            return
        try:
            status = decode_job_status(message.value() or b"")
        except ValueError:
            return
        if status.state is JobState.RUNNING and (said := status.progress) is not None:
            share = f" of {said.total:g}" if said.total is not None else ""
            what = f": {escape(said.message)}" if said.message else ""
            err_console.print(f"{key} running, {said.done:g}{share} done{what}")

    return TopicFollower(
        settings.bootstrap_servers, (JOB_STATUS_TOPIC,), told, start=END,
        client_id="computeinfra-submit",
    ).start(assign_now=True)  # fmt: skip


def watch(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    from_beginning: Annotated[bool, typer.Option(help="Replay earlier completions too.")] = False,
    count: Annotated[int | None, typer.Option(help="Exit after this many completions.")] = None,
) -> None:
    """Print a line per completion as it arrives (Ctrl-C to stop)."""
    settings = Settings.from_env()
    check_reachable(settings.bootstrap_servers)
    arrived: queue.Queue[Message] = queue.Queue()
    follower = TopicFollower(
        settings.bootstrap_servers,
        (COMPLETED_TOPIC,),
        arrived.put,
        start=BEGINNING if from_beginning else END,
        client_id="computeinfra-watch",
    ).start(assign_now=True)
    # On stderr in both modes: it tells a person (and a script) that watching has begun.
    err_console.print("watching completedJobs (Ctrl-C to stop)…")
    seen = 0
    try:
        while count is None or seen < count:
            try:
                message = arrived.get(timeout=WATCH_WAKE_SECONDS)
            except queue.Empty:
                continue
            completion = decode_completion(message.value() or b"")
            seen += 1
            if as_json:
                print_json(completion.model_dump(mode="json"))
            else:
                console.print(notification_line(completion), soft_wrap=True)
            sys.stdout.flush()
    finally:
        follower.stop()


def status(
    key: Annotated[str, typer.Argument(help="The job key.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON (the only form; for scripts).")
    ] = True,
) -> None:
    """Show a job's state, as JSON: succeeded, failed, rejected or cancelled with its
    completion, running (attempt, block, progress), pending if queued, or unknown (exit 1)."""
    settings = Settings.from_env()
    check_reachable(settings.bootstrap_servers)
    found = job_state(settings.bootstrap_servers, key)
    print_json(found.to_json())
    if found.state is None:
        raise typer.Exit(EXIT_FAILED)


class Unfinished(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    ANY = "any"


def cancel(
    keys: Annotated[
        list[str] | None, typer.Argument(help="Keys of the jobs to cancel.", show_default=False)
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Every unfinished job of this task (no keys).")
    ] = None,
    state: Annotated[
        Unfinished | None, typer.Option(help="Only jobs in this state (no keys).")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every unfinished job (no keys).")] = False,
    reason: Annotated[str | None, typer.Option(help="Said in each job's completion.")] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for each job's completion, and print it.")
    ] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait with --wait.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per key.")] = False,
) -> None:
    """Cancel jobs, by key or by --task/--state/--all: one waiting never runs, one running
    is stopped, and its completion says cancelled.

    A job named by key that completed keeps its completion, and is reported. An unknown
    key is an error, and then nothing is cancelled (exit 2).
    """
    settings = Settings.from_env()
    chosen = bool(task or state or every)
    if bool(keys) == chosen:
        raise RequestError("name jobs by key, or choose them with --task, --state or --all")
    check_reachable(settings.bootstrap_servers)
    if keys:
        outcomes = cancel_jobs(settings.bootstrap_servers, keys, reason=reason)
    else:
        outcomes = cancel_unfinished(
            settings.bootstrap_servers, settings.group, task=task,
            state=JobState(state.value) if state and state is not Unfinished.ANY else None,
            reason=reason,
        )  # fmt: skip
        if not as_json:
            console.print(f"{len(outcomes)} unfinished job(s) chosen")
    for outcome in outcomes:
        if as_json and not wait:
            print_json(outcome.to_json())
        elif not as_json:
            console.print(_cancel_line(outcome), soft_wrap=True)
    if wait:
        _wait_for(settings, [o for o in outcomes if o.requested], timeout, as_json)


def _cancel_line(outcome: CancelOutcome) -> str:
    key = escape(outcome.key)
    if outcome.requested:
        return f"{key}  cancel requested (it was {outcome.state.value})"
    return f"{key}  {outcome.state.value} already: it keeps its completion"


def _wait_for(
    settings: Settings, outcomes: list[CancelOutcome], timeout: float | None, as_json: bool
) -> None:
    """Print each cancelled job's completion as it arrives (whatever it says)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with Client(settings=settings) as client:
        handles = [client.job(o.key) for o in outcomes]
        for handle in handles:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                completion = handle.completion(left)
            except JobTimeout as exc:
                err_console.print(f"[yellow]{exc}[/]")
                raise typer.Exit(EXIT_TIMEOUT) from None
            if as_json:
                print_json(completion.model_dump(mode="json"))
            else:
                console.print(notification_line(completion), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(watch)
    app.command()(status)
    app.command()(cancel)
