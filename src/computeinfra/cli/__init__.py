"""The ``computeinfra`` command line."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from computeinfra.errors import ComputeInfraError

from . import cluster, dead_letters, doctor, jobs, kafka, web
from .output import err_console

__all__ = ["app", "configure_logging", "main"]

# librdkafka's own lines reach Python logging under this name (``kafka/clients.py``).
LIBRDKAFKA_LOGGER = "computeinfra.kafka"

app = typer.Typer(
    help="Submit compute jobs to Kafka and run them on a Ray cluster of working blocks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def configure_logging(verbose: bool) -> None:
    """Log to stderr, never stdout (where ``--json`` output goes). librdkafka's lines (a
    broker still loading, a connection retried) are noise to a person at a terminal: shown
    only with ``-v``, which shows our own INFO lines too."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.DEBUG if verbose else logging.CRITICAL)


@app.callback()
def _options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show log lines, librdkafka's included.")
    ] = False,
) -> None:
    configure_logging(verbose)


app.add_typer(kafka.app, name="kafka", help="Run the local Kafka broker.")
app.add_typer(dead_letters.app, name="dead-letters")
jobs.register(app)
cluster.register(app)
web.register(app)
doctor.register(app)


def main() -> None:
    """Entry point: readable one-line errors instead of tracebacks for expected failures."""
    try:
        app()
    except ComputeInfraError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
