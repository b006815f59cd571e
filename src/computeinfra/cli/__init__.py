"""The ``computeinfra`` command line."""

from __future__ import annotations

import sys

import typer

from computeinfra.errors import ComputeInfraError

from . import cluster, jobs, kafka, web
from .output import err_console

__all__ = ["app", "main"]

app = typer.Typer(
    help="Submit compute jobs to Kafka and run them on a Ray cluster of working blocks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(kafka.app, name="kafka", help="Run the local Kafka broker.")
jobs.register(app)
cluster.register(app)
web.register(app)


def main() -> None:
    """Entry point: readable one-line errors instead of tracebacks for expected failures."""
    try:
        app()
    except ComputeInfraError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
