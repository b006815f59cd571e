"""The local broker as the settings describe it (data under ``COMPUTEINFRA_HOME``)."""

from __future__ import annotations

from computeinfra.config import Settings
from computeinfra.kafka.broker import BrokerConfig, LocalBroker

__all__ = ["local_broker"]


def local_broker(settings: Settings) -> LocalBroker:
    return LocalBroker(
        BrokerConfig(
            data_dir=settings.kafka_data_dir,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
        )
    )
