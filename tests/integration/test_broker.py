"""Integration tests for computeinfra.kafka.broker against a real local Kafka broker.

The first run fetches the Kafka jars with Maven into the shared cache (seconds);
later runs reuse them. The broker runs on free ports in a tmp dir, so these tests
do not clash with a developer's own broker.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from computeinfra.errors import BrokerError
from computeinfra.kafka.broker import BrokerConfig, BrokerStatus, LocalBroker

TOPIC = "broker-test"


def free_ports(count: int) -> list[int]:
    """Distinct free ports: all sockets stay bound until every port is picked."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition`` (a callable) until true; fail the test at the deadline."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def create_topic(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    futures[TOPIC].result(timeout=30)


def produce_one(bootstrap: str, value: bytes) -> None:
    delivered: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(
        TOPIC, value=value, key=b"k", on_delivery=lambda err, _msg: delivered.append(err)
    )
    assert producer.flush(30) == 0, "record not delivered within 30s"
    assert delivered == [None]


def consume_all(bootstrap: str, group: str, expect: int, timeout: float = 30.0) -> list[bytes]:
    """Read from the beginning with a consumer group until ``expect`` records or timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.subscribe([TOPIC])
        deadline = time.monotonic() + timeout
        while len(values) < expect and time.monotonic() < deadline:
            msg: Message | None = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert isinstance(value, bytes)
            values.append(value)
    finally:
        consumer.close()
    return values


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    port, controller_port = free_ports(2)
    local = LocalBroker(
        BrokerConfig(tmp_path / "kafka", port=port, controller_port=controller_port)
    )
    yield local
    local.stop()  # never leave a JVM behind, whatever the test did


@pytest.mark.slow
def test_start_produce_stop_restart_reset(broker: LocalBroker) -> None:
    cfg = broker.config
    assert not broker.status().running

    broker.start()
    status = broker.status()
    assert status.running and status.pid is not None
    assert status.bootstrap == cfg.bootstrap == f"127.0.0.1:{cfg.port}"
    first_pid = status.pid
    broker.start()  # idempotent: the same JVM keeps running
    assert broker.status().pid == first_pid

    create_topic(cfg.bootstrap)
    produce_one(cfg.bootstrap, b"hello")
    assert consume_all(cfg.bootstrap, "g1", expect=1) == [b"hello"]

    broker.stop()
    wait_until(lambda: not pid_alive(first_pid), 10, f"pid {first_pid} to disappear")
    assert broker.status() == BrokerStatus(False, None, cfg.bootstrap, cfg.data_dir.resolve())
    assert not (cfg.data_dir / "broker.pid").exists()
    broker.stop()  # no-op when not running

    broker.start()  # data persists across restarts
    assert broker.status().pid not in (None, first_pid)
    assert consume_all(cfg.bootstrap, "g2", expect=1) == [b"hello"]
    assert (cfg.data_dir / "server.log").stat().st_size > 0  # the log4j binding works

    broker.reset()
    assert not broker.status().running
    assert list(cfg.data_dir.iterdir()) == []


def test_stale_pid_file_means_not_running(tmp_path: Path) -> None:
    local = LocalBroker(BrokerConfig(tmp_path, port=1, controller_port=2))
    pid_file = tmp_path / "broker.pid"
    # A live pid that is not a Kafka broker (this very test process).
    pid_file.write_text(f"{os.getpid()}\n")
    assert local.status() == BrokerStatus(False, None, "127.0.0.1:1", tmp_path.resolve())
    # A pid that no longer exists.
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid_file.write_text(done.stdout)
    assert not local.status().running
    pid_file.write_text("garbage")
    assert not local.status().running
    local.stop()  # stopping a stale broker only removes the pid file
    assert not pid_file.exists()


def test_start_refuses_busy_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (controller_port,) = free_ports(1)
        local = LocalBroker(BrokerConfig(tmp_path, port=port, controller_port=controller_port))
        with pytest.raises(BrokerError, match="already in use"):
            local.start()
    assert not local.status().running
