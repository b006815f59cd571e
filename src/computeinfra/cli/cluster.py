"""Cluster commands: ``up``, ``blocks``, ``stats``, ``tasks``, ``schema``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from computeinfra.cluster.launcher import Cluster, analyzer_snapshot, block_statuses
from computeinfra.config import Settings
from computeinfra.errors import ConfigError
from computeinfra.runtime.up import serve
from computeinfra.schemas import write_schemas
from computeinfra.tasks.registry import load_registry

from . import scale
from .output import console, err_console, print_json

__all__ = ["register"]

STATS_TIMEOUT_SECONDS = 30.0


def _blocks_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(
        "block",
        "node",
        "state",
        "job",
        "supervisor pid",
        "worker pid",
        "processed",
        "partitions",
        "restarts",
        "hook errors",
    )
    for row in rows:
        state = str(row.get("state"))
        if row.get("error"):  # why it is dead, or last died
            state += f" ({row['error']})"
        table.add_row(
            str(row.get("block")),
            str(row.get("node_name") or (row.get("node") or "—")[:12]),
            state,
            str(row.get("job") or "—"),
            str(row.get("supervisor_pid")),
            str(row.get("worker_pid")),
            str(row.get("processed", "")),
            ",".join(map(str, row.get("partitions", []))),
            str(row.get("restarts", 0)),
            str(row.get("hook_errors", 0)),
        )
    return table


def up(
    blocks: Annotated[int | None, typer.Option(help="Working blocks; default: CPU count.")] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes per block (COMPUTEINFRA_CONCURRENCY); default: one per "
            "core a block owns.",
        ),
    ] = None,
    web: Annotated[
        bool, typer.Option(help="Serve the web app on COMPUTEINFRA_WEB_PORT (default 8080).")
    ] = True,
    head: Annotated[
        bool, typer.Option("--head", help="Start the head: Ray, analyzer, blocks (the default).")
    ] = False,
    join: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Join the Ray cluster at ADDRESS (printed by `up --head`) as a processing "
            "node with --blocks blocks. Needs only Kafka's address; starts no broker.",
        ),
    ] = None,
    resources: Annotated[
        str | None,
        typer.Option(help="With --join: the node's resources as JSON, e.g. '{\"special\": 1}'."),
    ] = None,
    node_name: Annotated[
        str | None,
        typer.Option(
            help="With --join: a name unique in the cluster (default: the host name); "
            "reuse it when the node comes back."
        ),
    ] = None,
    no_kafka: Annotated[
        bool, typer.Option("--no-kafka", help="Never start a local broker; use the one named.")
    ] = False,
) -> None:
    """Start Kafka (unless COMPUTEINFRA_BOOTSTRAP is set), Ray, the blocks, the analyzer and
    the web app; or, with --join, a processing node for a running cluster."""
    if join is not None:
        if head:
            raise ConfigError("--head and --join exclude each other: a node is one or the other")
        return scale.join(join, blocks, resources, node_name, concurrency)
    if resources or node_name:
        raise ConfigError("--resources and --node-name go with --join")
    settings = Settings.from_env()
    if concurrency:
        settings = replace(settings, concurrency=concurrency)
    if no_kafka:
        settings = replace(settings, bootstrap=settings.bootstrap_servers)
    count = blocks or settings.default_blocks
    web_port = settings.web_port if web else 0

    def ready(cluster: Cluster) -> None:
        console.print(_blocks_table(cluster.status()))
        console.print(
            f"[bold green]ready[/]: {count} block(s), "
            f"Kafka at {cluster.settings.bootstrap_servers}, "
            f"results in {settings.results_root}. Submit from another shell, e.g.\n"
            "  computeinfra submit sleep --payload '{\"seconds\": 1}' --result-dir demo --wait\n"
            f"Add a processing node: computeinfra up --join {cluster.address} --blocks N\n"
            "Ctrl-C stops everything."
        )

    serve(
        settings, count, say=lambda text: err_console.print(text), on_ready=ready, web_port=web_port
    )


def blocks(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show every working block: its pids, state and the job it is running."""
    rows = block_statuses(Settings.from_env())
    if as_json:
        print_json(rows)
    else:
        console.print(_blocks_table(rows))


# The analyzer's counts per task, in the table's order (one per terminal state).
STATS_COUNTS = ("submitted", "succeeded", "failed", "rejected", "cancelled", "in_flight")


def stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The analyzer's metrics: counts, queue wait and run time percentiles, throughput."""
    snapshot: dict[str, Any] = analyzer_snapshot(Settings.from_env(), STATS_TIMEOUT_SECONDS)
    if as_json:
        print_json(snapshot)
        return
    table = Table(
        "task",
        "submitted",
        "succeeded",
        "failed",
        "rejected",
        "cancelled",
        "in flight",
        "wait p50/p95/p99 (s)",
        "run p50/p95/p99 (s)",
    )
    for name, row in snapshot["tasks"].items():
        table.add_row(
            name,
            *(str(row.get(k, 0)) for k in STATS_COUNTS),
            _percentiles(row["queue_wait"]),
            _percentiles(row["run_time"]),
        )
    console.print(table)
    console.print(
        f"throughput: {snapshot['throughput']['last_minute']} jobs in the last minute · "
        f"worker restarts: {snapshot['worker_restarts']['total']} · "
        f"backlog: {snapshot['backlog']}"
    )


def _percentiles(summary: dict[str, float | None]) -> str:
    values = [summary.get(k) for k in ("p50", "p95", "p99")]
    return "/".join("—" if v is None else f"{v:.3f}" for v in values)


def tasks(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The registered tasks with their payload schemas."""
    registry = load_registry(Settings.from_env().task_modules)
    if as_json:
        print_json(
            {
                t.name: {"description": t.description, "payload": t.schema(), "resources": t.needs}
                for t in registry
            }
        )
        return
    for item in registry:
        needs = ", ".join(f"{k}={v:g}" for k, v in item.needs.items())
        console.print(
            f"[bold]{item.name}[/] — {item.description}" + (f" (needs {needs})" if needs else "")
        )
        console.print_json(json.dumps(item.schema()))


def schema(
    out: Annotated[Path, typer.Option(help="Folder to write the JSON Schemas into.")] = Path(
        "docs/schemas"
    ),
) -> None:
    """Write the wire-format JSON Schemas (one per topic, one per task payload)."""
    for path in write_schemas(out, load_registry(Settings.from_env().task_modules)):
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    for command in (up, blocks, stats, tasks, schema):
        app.command()(command)
