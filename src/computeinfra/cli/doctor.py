"""``computeinfra doctor``: what is wrong between the blocks and Kafka, in plain words."""

from __future__ import annotations

from typing import Annotated

import typer

from computeinfra.config import Settings
from computeinfra.kafka.diagnosis import Level
from computeinfra.kafka.doctor import STUCK_AFTER_SECONDS, Doctor, Report

from .output import console, print_json

__all__ = ["register"]

_MARKS = {
    Level.OK: "[green]ok[/]     ",
    Level.NOTE: "[cyan]note[/]   ",
    Level.WARNING: "[yellow]warning[/]",
    Level.PROBLEM: "[bold red]problem[/]",
}


def doctor(
    fix: Annotated[
        bool, typer.Option("--fix", help="Abort transactions that are stuck or hanging.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    stuck_after: Annotated[
        float,
        typer.Option(help="Seconds after which a block's open transaction counts as stuck."),
    ] = STUCK_AFTER_SECONDS,
) -> None:
    """Check the broker, the job topics, the blocks' consumer group and their transactions.

    Exits 1 while a problem remains (docs/operations.md says what each one means)."""
    found = Doctor(Settings.from_env(), stuck_after=stuck_after)
    report = found.examine()
    if fix:
        report = found.fix(report)
        if report.fixed:  # look again: say what is left after the fix
            report = Report(found.examine().findings, report.fixed)
    if as_json:
        print_json(report.as_json())
    else:
        _print(report, fixed_asked=fix)
    if not report.healthy:
        raise typer.Exit(1)


def _print(report: Report, fixed_asked: bool) -> None:
    for finding in report.findings:
        console.print(
            f"{_MARKS[finding.level]} {finding.area:<12} {finding.message}", highlight=False
        )
    for line in report.fixed:
        console.print(f"[bold]fixed[/]   {line}", highlight=False)
    if fixed_asked and not report.fixed:
        console.print("nothing to fix")
    if not report.healthy and not fixed_asked and any(f.fixable for f in report.findings):
        console.print("run `computeinfra doctor --fix` to abort what is stuck")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
