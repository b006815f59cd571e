"""``computeinfra dead-letters``: list what ``deadJobs`` holds, and replay dead jobs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from computeinfra.client.dead_letters import dead_letters, replay
from computeinfra.config import Settings
from computeinfra.errors import RequestError
from computeinfra.kafka.admin import check_reachable

from .output import console, print_json

__all__ = ["app"]

app = typer.Typer(help="List dead letters (jobs that failed for good) and replay them.")


@app.callback(invoke_without_command=True)
def listing(
    context: typer.Context,
    task: Annotated[str | None, typer.Option(help="Only this task's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List the dead letters, oldest first: key, task, reason, attempts, time, replays."""
    if context.invoked_subcommand is not None:
        return
    settings = Settings.from_env()
    check_reachable(settings.bootstrap_servers)
    letters = dead_letters(settings.bootstrap_servers, task=task)
    if as_json:
        for letter in letters:
            print_json(letter.to_json())
        return
    table = Table("key", "task", "reason", "attempts", "at", "replayed as")
    for letter in letters:
        at = dt.datetime.fromtimestamp(letter.at).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            escape(letter.key or "(no key)"), letter.task or "—", escape(letter.reason),
            str(letter.attempts or "—"), at, ", ".join(letter.replays) or "—",
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(letters)} dead letter(s)")


@app.command("replay")
def replay_command(
    keys: Annotated[list[str] | None, typer.Argument(help="Keys of the dead letters.")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every dead letter with a key (with --task: its).")
    ] = False,
    task: Annotated[str | None, typer.Option(help="With --all: only this task's.")] = None,
) -> None:
    """Submit dead jobs again, each under a new key (KEY.r1, KEY.r2…) carrying replay_of;
    prints the new keys, one a line. An unknown key is an error, and nothing is written."""
    if bool(keys) == every or (task is not None and not every):
        raise RequestError("name dead letters by key, or replay them with --all [--task T]")
    settings = Settings.from_env()
    check_reachable(settings.bootstrap_servers)
    if every:  # those not replayed yet, whose request can be read
        found = dead_letters(settings.bootstrap_servers, task=task)
        keys = [lt.key for lt in found if lt.key and not lt.replays and lt.replayable]
    for new in replay(settings.bootstrap_servers, keys or []).values():
        print(new)
