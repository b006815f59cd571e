"""Shared terminal output for the CLI."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from computeinfra.protocol import Completion, Status

__all__ = ["console", "err_console", "notification_line", "print_json"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_MARK = {
    Status.SUCCEEDED: "[green]✓[/]",
    Status.FAILED: "[red]✗[/]",
    Status.REJECTED: "[yellow]⊘[/]",
    Status.CANCELLED: "[magenta]⊗[/]",
}


def print_json(data: Any) -> None:
    """Machine-readable output goes to stdout as plain JSON, never through rich markup."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def notification_line(completion: Completion) -> str:
    """One readable line per completion, for ``watch`` and ``submit --wait``."""
    took = ""
    if completion.started_at is not None:
        took = f" in {completion.finished_at - completion.started_at:.2f} s"
    at = time.strftime("%H:%M:%S", time.localtime(completion.finished_at))
    # Keys, task names and messages come from anyone: never read them as rich markup.
    key, task = escape(completion.key), escape(str(completion.task))
    line = f"{at} {_MARK[completion.status]} {key}  [bold]{task}[/]  {completion.status.value}"
    line += took
    if completion.status is Status.SUCCEEDED:
        files = len(completion.outputs)
        where = escape(str(completion.result_dir))
        line += f"  → {where} ({files} file{'s' if files != 1 else ''})"
    elif completion.error is not None:
        line += f": {escape(completion.error.message.splitlines()[0])}"
    if completion.attempts > 1:
        line += f" (attempts: {completion.attempts})"
    return line
