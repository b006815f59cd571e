"""``computeinfra doctor`` on the real stack: a healthy report, and a transaction left open
by a producer that died, which holds back every completion after it until ``--fix``
aborts it (Kafka's own TransactionsCommand does the abort)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from computeinfra.testing.stack import DevStack
from tests.helpers import run_cli, wait_for

SCRATCH = "doctorScratch"
TIMEOUT = 120.0


def _doctor(stack: DevStack, *args: str) -> tuple[int, dict]:
    result = run_cli("doctor", "--json", *args, env=stack.env, timeout=TIMEOUT)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def _codes(report: dict) -> dict[str, str]:
    return {f["code"]: f["level"] for f in report["findings"]}


def test_doctor_reports_a_healthy_stack(stack: DevStack) -> None:
    code, report = _doctor(stack)
    found = _codes(report)
    assert found["broker-ok"] == "ok" and found["topics-ok"] == "ok"
    group = next(f for f in report["findings"] if f["area"] == "group")
    assert group["data"]["members"] >= 1, group
    assert "transactions-unreadable" not in found, report
    human = run_cli("doctor", env=stack.env, timeout=TIMEOUT)
    assert "Kafka at" in human.stdout and "topics present" in human.stdout
    assert code == (0 if report["healthy"] else 1)


@pytest.fixture
def stuck_transaction(stack: DevStack) -> Iterator[str]:
    """A block-like producer that opened a transaction on SCRATCH and was SIGKILLed; its
    timeout (10 min) stands for a coordinator that never ended it."""
    bootstrap = stack.settings.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(SCRATCH, 1, 1)]).values():
        try:
            future.result(30)
        except Exception as exc:  # already there from an earlier run of this test
            assert "already exists" in str(exc)
    txn_id = f"{stack.settings.namespace}-doctor-test-block-9"
    script = textwrap.dedent(f"""
        import sys, time
        from confluent_kafka import Producer
        p = Producer({{"bootstrap.servers": "{bootstrap}", "transactional.id": "{txn_id}",
                      "transaction.timeout.ms": 600000}})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce("{SCRATCH}", b"never committed", partition=0)
        p.flush(30)
        print("open", flush=True)
        time.sleep(3600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        yield txn_id
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _visible(bootstrap: str, value: bytes) -> bool:
    """Whether a read_committed reader sees ``value`` on SCRATCH (an open transaction
    before it hides it)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "doctor-test-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(SCRATCH, 0, 0)])
        seen = []
        for _ in range(20):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                seen.append(message.value())
        return value in seen
    finally:
        consumer.close()


def test_doctor_fix_aborts_a_transaction_left_open(stack: DevStack, stuck_transaction: str) -> None:
    bootstrap = stack.settings.bootstrap_servers
    later = Producer({"bootstrap.servers": bootstrap})
    later.produce(SCRATCH, b"committed after it", partition=0)
    assert later.flush(30) == 0
    assert not _visible(bootstrap, b"committed after it")  # held back by the open one

    code, report = _doctor(stack, "--stuck-after", "0")
    stuck = [f for f in report["findings"] if f["code"] == "stuck-transaction"]
    assert code == 1 and [f["data"]["transactional_id"] for f in stuck] == [stuck_transaction]
    assert stuck[0]["data"]["partitions"] == [[SCRATCH, 0]]

    code, fixed = _doctor(stack, "--fix", "--stuck-after", "0")
    assert fixed["fixed"] == [f"fenced {stuck_transaction}: its open transaction was aborted"]
    assert "stuck-transaction" not in _codes(fixed)  # looked again after the fix
    wait_for(lambda: _visible(bootstrap, b"committed after it"), TIMEOUT, "the record after it")
