"""Start-up on a long history (issue #17): time from `computeinfra up` to ready, and the web
app's first page, on a data directory holding 1,000,000 completed jobs and 10,000 pending
ones, beside the same on an empty directory, in one command.

The history is written straight to the broker, as the blocks would have left it: every
request on ``pendingJobs`` with its completion on ``completedJobs`` and the group's offset
committed past it, then the pending requests after that offset. Start-up must not grow
with history (the goal: within 2x of empty).
"""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka import Producer, TopicPartition

from computeinfra.kafka.admin import ensure_topics
from computeinfra.kafka.broker import BrokerConfig, LocalBroker
from computeinfra.kafka.clients import make_consumer, make_producer
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    PENDING_TOPIC,
    Completion,
    JobRequest,
    Status,
    encode_completion,
    encode_request,
)
from computeinfra.testing.stack import dev_stack, free_port, settings_under

__all__ = ["run_startup"]

READY_TIMEOUT_SECONDS = 600.0
PAGES = ("/", "/api/jobs")


def _fill(root: Path, completed: int, pending: int) -> None:
    broker = LocalBroker(
        BrokerConfig(data_dir=root / "kafka", port=free_port(), controller_port=free_port())
    )
    broker.start()
    try:
        settings = settings_under({"COMPUTEINFRA_BOOTSTRAP": broker.config.bootstrap})
        ensure_topics(settings)
        producer = make_producer(broker.config.bootstrap, "bench-fill", **{"linger.ms": 50})
        request = encode_request(JobRequest(task="sleep", payload={"seconds": 0}, result_dir="h"))
        now = time.time()
        for index in range(completed):
            key = f"history-{index}".encode()
            _produce(producer, PENDING_TOPIC, request, key)
            answer = Completion(key=key.decode(), task="sleep", status=Status.SUCCEEDED,
                                result_dir="h", attempts=1, submitted_at=now, started_at=now,
                                finished_at=now, block=0)  # fmt: skip
            _produce(producer, COMPLETED_TOPIC, encode_completion(answer), key)
        producer.flush(300)
        _commit_to_end(broker.config.bootstrap, settings.group, settings.partitions)
        for index in range(pending):
            _produce(producer, PENDING_TOPIC, request, f"pending-{index}".encode())
        producer.flush(300)
    finally:
        broker.stop()


def _produce(producer: Producer, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)


def _commit_to_end(bootstrap: str, group: str, partitions: int) -> None:
    """The group's offsets past every request so far: those jobs are done."""
    consumer = make_consumer(bootstrap, group, client_id="bench-fill")
    try:
        ends = []
        for partition in range(partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(PENDING_TOPIC, partition))
            ends.append(TopicPartition(PENDING_TOPIC, partition, high))
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def _start(root: Path, blocks: int) -> dict[str, float]:
    """Seconds from `up` to ready, and to each first page of the web app."""
    started = time.monotonic()
    env = {"COMPUTEINFRA_WEB_PORT": str(free_port())}
    with dev_stack(root, blocks, env, ready_timeout=READY_TIMEOUT_SECONDS) as stack:
        figures = {"ready_seconds": time.monotonic() - started}
        _wait_listening(int(env["COMPUTEINFRA_WEB_PORT"]))  # `up` starts it once ready
        figures["web_seconds"] = time.monotonic() - started
        for page in PAGES:
            begun = time.monotonic()
            with urllib.request.urlopen(stack.web_url + page, timeout=60) as answer:
                answer.read()
            figures[f"page {page} seconds"] = time.monotonic() - begun
        return figures


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling a condition with a deadline


def run_startup(root: Path, blocks: int, completed: int, pending: int) -> dict[str, Any]:
    empty, full = root / "startup-empty", root / "startup-history"
    begun = time.monotonic()
    _fill(full, completed, pending)
    fill_seconds = time.monotonic() - begun
    result = {
        "completed": completed,
        "pending": pending,
        "fill_seconds": fill_seconds,
        "empty": _start(empty, blocks),
        "history": _start(full, blocks),
    }
    result["ratio"] = result["history"]["ready_seconds"] / result["empty"]["ready_seconds"]
    return result
