"""The local broker as the settings describe it (data under ``COMPUTEINFRA_HOME``): one
node in ``<home>/kafka``, or a cluster of several (``quorum.py``) in ``<home>/kafka-quorum``."""

from __future__ import annotations

from pathlib import Path

from computeinfra.config import Settings
from computeinfra.kafka.broker import BrokerConfig, LocalBroker
from computeinfra.kafka.quorum import BrokerQuorum, QuorumConfig, recorded_nodes

__all__ = ["LocalKafka", "local_broker", "quorum_dir"]

# Either shape answers start(), stop(), status(), reset() and config.bootstrap/data_dir.
LocalKafka = LocalBroker | BrokerQuorum


def quorum_dir(settings: Settings) -> Path:
    return settings.home / "kafka-quorum"


def local_broker(settings: Settings, nodes: int | None = None) -> LocalKafka:
    """``nodes`` wins, then ``COMPUTEINFRA_KAFKA_NODES``, then the cluster already created
    under ``COMPUTEINFRA_HOME`` (so ``kafka stop`` finds what ``kafka start --nodes 3``
    started), else a single node."""
    count = nodes or settings.kafka_nodes or recorded_nodes(quorum_dir(settings)) or 1
    if count == 1:
        return LocalBroker(
            BrokerConfig(
                data_dir=settings.kafka_data_dir,
                port=settings.kafka_port,
                controller_port=settings.kafka_controller_port,
            )
        )
    return BrokerQuorum(
        QuorumConfig(
            data_dir=quorum_dir(settings),
            nodes=count,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
        )
    )
