"""``computeinfra up --join ADDRESS``: the processing-node side of ``up`` (``runtime/node.py``)."""

from __future__ import annotations

import socket
from dataclasses import replace

from computeinfra.config import Settings
from computeinfra.runtime.node import JoinedNode, NodeSpec, parse_resources, serve_node

from .output import console, err_console

__all__ = ["join"]


def join(
    address: str,
    blocks: int | None,
    resources: str | None,
    node_name: str | None,
    concurrency: int | None = None,
) -> None:
    """Start a Ray node joining ``address`` and ``blocks`` working blocks on it."""
    settings = Settings.from_env()
    if concurrency:
        settings = replace(settings, concurrency=concurrency)
    blocks = blocks or settings.default_blocks
    spec = NodeSpec(
        address=address,
        blocks=blocks,
        name=node_name or socket.gethostname(),
        resources=parse_resources(resources),
        node_ip=settings.node_ip,
    )

    def ready(node: JoinedNode) -> None:
        console.print(
            f"[bold green]ready[/]: node {spec.name} ({node.node_id}) with {blocks} block(s), "
            f"Kafka at {settings.bootstrap_servers}. Ctrl-C stops this node."
        )

    serve_node(settings, spec, say=lambda text: err_console.print(text), on_ready=ready)
