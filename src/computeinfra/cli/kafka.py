"""``computeinfra kafka start|stop|status|reset|topics|fetch``: the local broker, or the
local cluster of ``--nodes N`` brokers (``kafka/quorum.py``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from computeinfra.config import Settings
from computeinfra.errors import ConfigError
from computeinfra.kafka.admin import check_reachable, ensure_topics
from computeinfra.kafka.broker import ensure_kafka_jars
from computeinfra.kafka.local import LocalKafka, local_broker
from computeinfra.kafka.quorum import BrokerQuorum

from .output import console, print_json

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)


def _local_only(settings: Settings) -> None:
    if not settings.uses_local_broker:
        raise ConfigError(
            f"COMPUTEINFRA_BOOTSTRAP={settings.bootstrap} names an external cluster; "
            "the kafka commands manage only the local broker. Unset it to use them."
        )


@app.command()
def fetch() -> None:
    """Download the Kafka jars from Maven Central into the cache (done once)."""
    console.print(f"Kafka jars in {ensure_kafka_jars()}")


NodesOption = Annotated[
    int | None,
    typer.Option(
        "--nodes",
        min=1,
        help="Brokers in the local cluster (a static KRaft quorum, ports 9092, 9094, …); "
        "default: COMPUTEINFRA_KAFKA_NODES, else the cluster already created, else 1.",
    ),
]


def _pids(broker: LocalKafka) -> str:
    if isinstance(broker, BrokerQuorum):
        return "pids " + ", ".join(str(n.pid) for n in broker.node_statuses())
    return f"pid {broker.status().pid}"


@app.command()
def start(nodes: NodesOption = None) -> None:
    """Start the local broker(s) in the background and create the job topics."""
    settings = Settings.from_env()
    _local_only(settings)
    broker = local_broker(settings, nodes)
    broker.start()
    created = ensure_topics(Settings.from_env(bootstrap=broker.config.bootstrap))
    console.print(f"Kafka running at {broker.config.bootstrap} ({_pids(broker)})")
    if created:
        console.print(f"created topics: {', '.join(created)}")


@app.command()
def stop() -> None:
    """Stop the local broker (its data is kept)."""
    settings = Settings.from_env()
    _local_only(settings)
    local_broker(settings).stop()
    console.print("Kafka stopped")


@app.command()
def status() -> None:
    """Print the local broker's state as JSON."""
    settings = Settings.from_env()
    if not settings.uses_local_broker:
        check_reachable(settings.bootstrap_servers)
        print_json({"running": True, "bootstrap": settings.bootstrap_servers, "local": False})
        return
    broker = local_broker(settings)
    state = broker.status()
    report: dict[str, Any] = {
        "running": state.running,
        "pid": state.pid,
        "bootstrap": state.bootstrap,
        "data_dir": str(state.data_dir),
        "local": True,
    }
    if isinstance(broker, BrokerQuorum):
        report["nodes"] = [
            {"node_id": i, "running": n.running, "pid": n.pid, "bootstrap": n.bootstrap}
            for i, n in enumerate(broker.node_statuses(), start=1)
        ]
    print_json(report)
    if not state.running:
        raise typer.Exit(1)


@app.command()
def reset(yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")) -> None:
    """Stop the local broker and delete all its data: every pending and completed job."""
    settings = Settings.from_env()
    _local_only(settings)
    broker = local_broker(settings)
    if not yes:
        typer.confirm(f"Delete all Kafka data in {broker.config.data_dir}?", abort=True)
    broker.reset()
    console.print("Kafka data deleted")


@app.command()
def topics() -> None:
    """Create the job topics if they are missing (on the local or the named cluster)."""
    settings = Settings.from_env()
    check_reachable(settings.bootstrap_servers)
    created = ensure_topics(settings)
    console.print(f"created: {', '.join(created)}" if created else "all topics exist")
