"""Topic creation and consumer-lag reading."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from computeinfra.config import Settings
from computeinfra.errors import KafkaError
from computeinfra.kafka.clients import (
    METADATA_TIMEOUT_SECONDS,
    common_config,
    make_consumer,
    partition_count,
    watermarks,
)
from computeinfra.protocol import (
    CANCEL_TOPIC,
    COMPLETED_TOPIC,
    DEAD_TOPIC,
    JOB_STATUS_TOPIC,
    PENDING_TOPIC,
)

__all__ = [
    "check_reachable",
    "consumer_lag",
    "ensure_lane_topics",
    "ensure_topics",
    "partition_lag",
]

_log = logging.getLogger("computeinfra.kafka")
TOPIC_ALREADY_EXISTS = 36
BROKER_DEFAULT = -1  # a replication factor of -1 asks for the broker's default
# Completions are the job history; keep them a long time by default.
COMPLETED_RETENTION_MS = 30 * 24 * 3600 * 1000


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient(common_config(bootstrap, "computeinfra-admin"))


def check_reachable(bootstrap: str, timeout: float = 5.0) -> None:
    """Raise a readable ``KafkaError`` when no broker answers at ``bootstrap``."""
    try:
        _admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaError(
            f"cannot reach Kafka at {bootstrap} ({exc.args[0].str() if exc.args else exc}). "
            "Start it with `make run` or `computeinfra kafka start`, "
            "or point COMPUTEINFRA_BOOTSTRAP at your cluster."
        ) from None


def _topic_settings(settings: Settings) -> tuple[int, dict[str, str]]:
    """Replication factor and topic config; unset, both are the brokers' defaults
    (``default.replication.factor``, ``min.insync.replicas``: 3 and 2 on a local quorum)."""
    replication = settings.replication or BROKER_DEFAULT
    min_insync = settings.min_insync
    if min_insync is None and settings.replication is not None:
        min_insync = 2 if settings.replication >= 3 else 1
    return replication, {} if min_insync is None else {"min.insync.replicas": str(min_insync)}


def ensure_topics(settings: Settings) -> list[str]:
    """Create the job topics that are missing; return the names that were created."""
    replication, common = _topic_settings(settings)
    wanted = [
        NewTopic(PENDING_TOPIC, settings.partitions, replication, config=common),
        NewTopic(
            COMPLETED_TOPIC,
            settings.partitions,
            replication,
            config={**common, "retention.ms": str(COMPLETED_RETENTION_MS)},
        ),
        NewTopic(DEAD_TOPIC, 1, replication, config=common),
        # Same partition count as pendingJobs, so a key lands on the same partition number.
        NewTopic(
            JOB_STATUS_TOPIC,
            settings.partitions,
            replication,
            config={**common, "cleanup.policy": "compact"},
        ),
        NewTopic(
            CANCEL_TOPIC,
            settings.partitions,
            replication,
            config={**common, "cleanup.policy": "compact"},
        ),
    ]
    return _create(settings, wanted)


def ensure_lane_topics(settings: Settings, names: Sequence[str]) -> list[str]:
    """Create missing lane topics (``protocol.lane_topic``), ``settings.lane_partitions`` each."""
    replication, common = _topic_settings(settings)
    partitions = settings.lane_partitions
    wanted = [NewTopic(name, partitions, replication, config=common) for name in names]
    return _create(settings, wanted)


def _create(settings: Settings, wanted: list[NewTopic]) -> list[str]:
    if not wanted:
        return []
    admin = _admin(settings.bootstrap_servers)
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=30).items():
        try:
            future.result(timeout=60)
            created.append(name)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaError(f"cannot create topic {name!r}: {exc}") from exc
    return created


def pending_partitions(settings: Settings) -> int:
    """How many partitions ``pendingJobs`` has (it may predate ``settings.partitions``)."""
    consumer = make_consumer(settings.bootstrap_servers, client_id="computeinfra-admin")
    try:
        return partition_count(consumer, PENDING_TOPIC)
    finally:
        consumer.close()


def consumer_lag(bootstrap: str, group: str, topic: str = PENDING_TOPIC) -> int | None:
    """Records in ``topic`` that ``group`` has not committed yet (the backlog)."""
    consumer = make_consumer(bootstrap, group, client_id="computeinfra-lag")
    try:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_SECONDS)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return None
        return sum(lag_of(consumer, [(topic, p) for p in found.partitions]).values())
    except (KafkaException, KafkaError) as exc:  # ``lag_of``'s ``watermarks`` says KafkaError
        _log.warning("cannot read the lag of group %s: %s", group, exc)
        return None
    finally:
        consumer.close()


def partition_lag(
    bootstrap: str, group: str, where: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Per partition, the records ``group`` has not committed yet; raises ``KafkaException``
    (the committed offsets) or ``KafkaError`` (where a partition ends)."""
    consumer = make_consumer(bootstrap, group, client_id="computeinfra-lag")
    try:
        return lag_of(consumer, where)
    finally:
        consumer.close()


def lag_of(consumer: Consumer, where: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """What ``consumer``'s group has not committed on each partition: from the committed
    offset (or the log's start, if none) to the end."""
    if not where:
        return {}
    tps = [TopicPartition(topic, partition) for topic, partition in where]
    lag = {}
    for tp in consumer.committed(tps, timeout=METADATA_TIMEOUT_SECONDS):
        low, high = watermarks(consumer, tp)
        position = tp.offset if tp.offset >= 0 else low
        lag[(tp.topic, tp.partition)] = max(high - position, 0)
    return lag
