"""Follows ``pendingJobs`` and ``completedJobs`` from their beginning, for the analyzer."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from computeinfra.kafka.clients import partition_count, reader
from computeinfra.protocol import COMPLETED_TOPIC, PENDING_TOPIC, Completion, decode_completion

__all__ = ["TopicFeed", "task_of"]

_log = logging.getLogger("computeinfra.analyzer")
POLL_SECONDS = 0.2
TOPIC_WAIT_SECONDS = 2.0


def task_of(value: bytes | None) -> str | None:
    """The task a raw request names, or ``None`` when it names none readably."""
    try:
        data = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    task = data.get("task") if isinstance(data, dict) else None
    return task if isinstance(task, str) and task else None


class TopicFeed:
    """A thread reading both job topics; callbacks run on it, in topic order per partition."""

    def __init__(
        self,
        bootstrap: str,
        on_submitted: Callable[[str | None], None],
        on_completed: Callable[[Completion], None],
    ) -> None:
        self._bootstrap = bootstrap
        self._on_submitted = on_submitted
        self._on_completed = on_completed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="analyzer-feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _assign_all(self) -> Consumer:
        consumer = reader(self._bootstrap, client_id="computeinfra-analyzer")
        while not self._stop.is_set():
            try:
                partitions = [
                    TopicPartition(topic, p, OFFSET_BEGINNING)
                    for topic in (PENDING_TOPIC, COMPLETED_TOPIC)
                    for p in range(partition_count(consumer, topic))
                ]
                consumer.assign(partitions)
                return consumer
            except Exception as exc:  # topics not created yet, or the broker is away
                _log.warning("analyzer feed waiting for the job topics: %s", exc)
                self._stop.wait(TOPIC_WAIT_SECONDS)
        return consumer

    def _run(self) -> None:
        consumer = self._assign_all()
        try:
            while not self._stop.is_set():
                message = consumer.poll(POLL_SECONDS)
                if message is None or message.error():
                    continue
                if message.topic() == PENDING_TOPIC:
                    self._on_submitted(task_of(message.value()))
                    continue
                try:
                    self._on_completed(decode_completion(message.value() or b""))
                except ValueError as exc:
                    _log.warning("unreadable completion at offset %s: %s", message.offset(), exc)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
