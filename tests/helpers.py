"""Test helpers: waiting on conditions, reading topics, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from computeinfra.kafka.clients import partition_count, reader
from computeinfra.protocol import COMPLETED_TOPIC, Completion, decode_completion
from computeinfra.testing.stack import DevStack

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "computeinfra"]


# The running stack the integration tests share (see tests/integration/conftest.py).
Stack = DevStack


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, list]]:
    """Every record in ``topic`` up to its current end, as (key, value, headers)."""
    return [(m.key(), m.value(), m.headers() or []) for m in read_messages(bootstrap, topic)]


def read_messages(bootstrap: str, topic: str) -> list[Message]:
    """Every record in ``topic`` up to its current end."""
    consumer = reader(bootstrap)
    try:
        n = partition_count(consumer, topic)
        ends = {}
        for p in range(n):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        records = []
        deadline = time.monotonic() + 60
        while ends and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                records.append(message)
            # Transaction markers take offsets but are never delivered: compare positions.
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            ends = {
                tp.partition: ends[tp.partition]
                for tp in positions
                if tp.offset < ends[tp.partition]
            }
        assert not ends, f"could not read {topic} to its end"
        return records
    finally:
        consumer.close()


def completion_times(
    bootstrap: str, keys: Iterable[str]
) -> dict[str, list[tuple[Completion, float]]]:
    """All completions on record for ``keys``, each with its record's time (s)."""
    wanted: dict[str, list[tuple[Completion, float]]] = {k: [] for k in keys}
    for message in read_messages(bootstrap, COMPLETED_TOPIC):
        key, value = message.key(), message.value()
        text = key.decode(errors="backslashreplace") if key else None
        if text in wanted and value is not None:
            wanted[text].append((decode_completion(value), message.timestamp()[1] / 1000))
    return wanted


def completions_for(bootstrap: str, keys: Iterable[str]) -> dict[str, list[Completion]]:
    """All completions on record for ``keys`` (to prove there is exactly one each)."""
    wanted = {k: [] for k in keys}
    for key, value, _headers in read_topic(bootstrap, COMPLETED_TOPIC):
        text = key.decode(errors="backslashreplace") if key else None
        if text in wanted and value is not None:
            wanted[text].append(decode_completion(value))
    return wanted


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "computeinfra"), *args]
        if (REPO / ".venv" / "bin" / "computeinfra").exists()
        else [*CLI, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"computeinfra {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result
