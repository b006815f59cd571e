"""Kafka clients configured the one way the project uses them.

Producers are idempotent with ``acks=all`` and the Java-compatible key partitioner. Consumers
read only committed data and never commit on their own: offsets are committed by the code
that knows the record's work is done.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import KafkaError as RawKafkaError

from computeinfra.config import ToolSettings
from computeinfra.errors import ConfigError, KafkaError

__all__ = [
    "TopicMissing",
    "electing",
    "make_consumer",
    "make_producer",
    "partition_count",
    "reader",
    "watermarks",
]

_log = logging.getLogger("computeinfra.kafka")
REPEAT_LOG_SECONDS = 30.0


class _Quieter(logging.Filter):
    """librdkafka repeats a broken connection many times a second while a broker is away;
    let each distinct message through once per ``REPEAT_LOG_SECONDS``."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        # The text after the broker thread name is what repeats; timings inside it vary.
        text = str(record.getMessage()).split(" (after ")[0]
        now = time.monotonic()
        if now - self._last.get(text, -REPEAT_LOG_SECONDS) < REPEAT_LOG_SECONDS:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[text] = now
        return True


_log.addFilter(_Quieter())
METADATA_TIMEOUT_SECONDS = 10.0
KAFKA_CONFIG_ENV = "COMPUTEINFRA_KAFKA_CONFIG"  # named in errors; read in config.py


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines, as in a Java ``client.properties``; ``#`` and ``!`` start comments."""
    properties = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"line {number} of the Kafka client config is not key=value: {raw!r}")
        properties[key.strip()] = value.strip()
    return properties


@functools.cache
def security_config() -> dict[str, str]:
    """Extra librdkafka settings (SASL, SSL, …) from the file ``COMPUTEINFRA_KAFKA_CONFIG``."""
    path = ToolSettings.from_env().kafka_client_config
    if path is None:
        return {}
    try:
        return parse_properties(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{KAFKA_CONFIG_ENV}={path}: {exc.strerror}") from None


def common_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        # librdkafka logs through Python logging instead of raw stderr.
        "logger": _log,
        **security_config(),
    }


def make_producer(bootstrap: str, client_id: str = "computeinfra", **overrides: Any) -> Producer:
    config = {
        **common_config(bootstrap, client_id),
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 2,
        **overrides,
    }
    return Producer(config)


def make_consumer(
    bootstrap: str, group: str | None = None, client_id: str = "computeinfra", **overrides: Any
) -> Consumer:
    """A consumer; without ``group`` it is for ``assign()`` reads and never joins a group."""
    config = {
        **common_config(bootstrap, client_id),
        "group.id": group or f"computeinfra-reader-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        **overrides,
    }
    return Consumer(config)


def reader(bootstrap: str, client_id: str = "computeinfra-reader", **overrides: Any) -> Consumer:
    """A group-less consumer for reading topics by explicit offsets."""
    return make_consumer(bootstrap, None, client_id, **{"enable.partition.eof": False, **overrides})


# Just after a broker starts again it answers metadata before it leads its partitions again:
# these say so (librdkafka does not mark them retriable in a watermark query's error).
ELECTING = {RawKafkaError.NOT_LEADER_FOR_PARTITION, RawKafkaError.LEADER_NOT_AVAILABLE}
ELECTING_WAIT_SECONDS = 0.1


def electing(error: RawKafkaError) -> bool:
    """Whether ``error`` may pass by itself: retriable, or a leader being elected."""
    return bool(error.retriable()) or error.code() in ELECTING


def watermarks(
    consumer: Consumer, tp: TopicPartition, timeout: float = METADATA_TIMEOUT_SECONDS
) -> tuple[int, int]:
    """The partition's low and high watermarks, asked again while its leader is being
    elected (for up to ``timeout``); any other failure raises ``KafkaError``, not
    confluent-kafka's own exception (the chaos test met NOT_LEADER_FOR_PARTITION in a
    cancel's lookup just after a broker restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = consumer.get_watermark_offsets(
                tp, timeout=max(deadline - time.monotonic(), 0.1)
            )
        except KafkaException as exc:
            error: RawKafkaError = exc.args[0]
            if electing(error) and time.monotonic() < deadline:
                time.sleep(ELECTING_WAIT_SECONDS)  # backing off while a leader is elected
                continue
            where = f"{tp.topic}[{tp.partition}]"
            raise KafkaError(f"cannot read where {where} ends: {error.str()}") from exc
        if found is None:
            raise KafkaError(f"cannot read where {tp.topic}[{tp.partition}] ends: timed out")
        low, high = found
        return int(low), int(high)


class TopicMissing(KafkaError):
    """The broker answered, and has no such topic."""


# A metadata request the broker leaves unanswered (one just started again, a VM frozen) is
# asked again: each try gets this share of the caller's wait, not all of it.
METADATA_TRIES = 4
# The client could not hear from the broker in time: asking again may well work.
UNANSWERED = {RawKafkaError._TIMED_OUT, RawKafkaError._TRANSPORT, RawKafkaError._ALL_BROKERS_DOWN}


def partition_count(client: Consumer | Producer, topic: str, timeout: float | None = None) -> int:
    """How many partitions ``topic`` has, asked again until ``timeout`` (by default
    ``METADATA_TIMEOUT_SECONDS``) while the broker does not answer or elects a leader.
    ``TopicMissing`` only when the broker answered that there is no such topic;
    ``KafkaError`` when it could not say: a caller must never take the one for the other
    (a lookup did, and called a queued job unknown)."""
    wait = METADATA_TIMEOUT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + wait
    while True:
        try_for = max(min(deadline - time.monotonic(), wait / METADATA_TRIES), 0.1)
        try:
            found = client.list_topics(topic, timeout=try_for).topics.get(topic)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not isinstance(error, RawKafkaError):
                raise KafkaError(f"cannot read metadata for topic {topic!r}: {exc}") from exc
            if not (error.code() in UNANSWERED or electing(error)) or time.monotonic() > deadline:
                raise KafkaError(
                    f"cannot read metadata for topic {topic!r}: {error.str()}"
                ) from exc
            if error.code() != RawKafkaError._TIMED_OUT:  # a timeout has waited already
                time.sleep(ELECTING_WAIT_SECONDS)
            continue
        except Exception as exc:
            raise KafkaError(f"cannot read metadata for topic {topic!r}: {exc}") from exc
        if found is None or (found.error is None and not found.partitions):
            raise TopicMissing(_missing(topic))
        if found.error is None:
            return len(found.partitions)
        if found.error.code() == RawKafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TopicMissing(_missing(topic))
        if not (electing(found.error) and time.monotonic() < deadline):
            raise KafkaError(f"cannot read metadata for topic {topic!r}: {found.error.str()}")
        time.sleep(ELECTING_WAIT_SECONDS)  # backing off while a leader is elected


def _missing(topic: str) -> str:
    return (
        f"topic {topic!r} does not exist; start the cluster with `computeinfra up` "
        "or create it with `computeinfra kafka topics`"
    )
