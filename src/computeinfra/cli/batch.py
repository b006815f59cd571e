"""Many jobs from one ``submit``: ``--repeat N`` or ``--payload @file.jsonl``; with ``--wait``
a progress bar until all complete, then a summary table."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from computeinfra.client.sdk import Client, JobHandle
from computeinfra.errors import RequestError
from computeinfra.protocol import TERMINAL_STATES, Completion, Status

from .output import console, err_console

__all__ = ["EXIT_FAILED", "EXIT_TIMEOUT", "read_jsonl", "submit_many"]

EXIT_FAILED = 1
EXIT_TIMEOUT = 3
REFRESH_SECONDS = 0.1
SUMMARY_ROWS = 50
_STYLE = {
    Status.SUCCEEDED: "green",
    Status.FAILED: "red",
    Status.REJECTED: "yellow",
    Status.CANCELLED: "magenta",
}


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """One JSON object per non-empty line; errors name the line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise RequestError(f"cannot read payload file {path!r}: {exc.strerror}") from None
    payloads = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RequestError(f"{path} line {number} is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise RequestError(f"{path} line {number} must be a JSON object")
        payloads.append(payload)
    if not payloads:
        raise RequestError(f"{path} holds no payloads: give one JSON object per line")
    return payloads


def _wait_all(handles: list[JobHandle], timeout: float | None) -> bool:
    """Show progress until every handle is done; ``False`` if ``timeout`` ran out first."""
    finished = threading.Semaphore(0)
    for handle in handles:
        handle.add_done_callback(lambda _h: finished.release())
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[bad]} not ok[/]"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        bar = progress.add_task("jobs", total=len(handles), ok=0, bad=0)
        done = 0
        while done < len(handles):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if not finished.acquire(timeout=min(REFRESH_SECONDS, left or REFRESH_SECONDS)):
                continue
            done += 1
            ok = sum(1 for h in handles if h.done() and h.completion().ok)
            progress.update(bar, completed=done, ok=ok, bad=done - ok)
    return True


def _summary(handles: list[JobHandle]) -> Table:
    table = Table("key", "status", "attempts", "run time", "result")
    completions = [h.completion() for h in handles if h.done()]
    for c in completions[:SUMMARY_ROWS]:
        took = f"{c.finished_at - c.started_at:.2f} s" if c.started_at is not None else "—"
        result = c.error.message.splitlines()[0] if c.error else (c.result_dir or "")
        style = _STYLE[c.status]
        table.add_row(c.key, f"[{style}]{c.status.value}[/]", str(c.attempts), took, result)
    if len(completions) > SUMMARY_ROWS:
        table.caption = f"first {SUMMARY_ROWS} of {len(completions)} shown"
    return table


def _totals(completions: list[Completion], submitted: int) -> str:
    counts = {s: sum(1 for c in completions if c.status is s) for s in TERMINAL_STATES}
    parts = [f"{counts[s]} {s.value}" for s in TERMINAL_STATES]
    missing = submitted - len(completions)
    if missing:
        parts.append(f"{missing} not complete")
    return f"{submitted} jobs: " + ", ".join(parts)


def submit_many(
    client: Client,
    task: str,
    payloads: list[dict[str, Any]],
    result_dir: str,
    *,
    key_prefix: str | None,
    wait: bool,
    timeout: float | None,
    limits: dict[str, Any] | None = None,
) -> int:
    """Submit every payload; return the exit code (0 all succeeded, 1 some did not, 3 timeout).
    ``limits``: ``time_limit`` and ``max_attempts`` for every job, as ``Client.submit``."""
    handles = [
        client.submit(
            task,
            payload,
            result_dir,
            key=f"{key_prefix}-{i}" if key_prefix else None,
            **(limits or {}),
        )
        for i, payload in enumerate(payloads)
    ]
    client.flush()
    if not wait:
        for handle in handles:
            print(handle.key)
        return 0
    err_console.print(f"submitted {len(handles)} {task} job(s), waiting…")
    complete = _wait_all(handles, timeout)
    console.print(_summary(handles))
    completions = [h.completion() for h in handles if h.done()]
    console.print(_totals(completions, len(handles)))
    if not complete:
        err_console.print(f"[yellow]not all jobs completed within {timeout} s[/]")
        return EXIT_TIMEOUT
    return 0 if all(c.ok for c in completions) else EXIT_FAILED
