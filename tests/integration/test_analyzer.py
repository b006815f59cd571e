"""The analyzer's figures match what was submitted."""

from __future__ import annotations

import json
import uuid

from computeinfra import Client
from computeinfra.cluster.launcher import analyzer_snapshot
from computeinfra.kafka.clients import make_producer, partition_count
from computeinfra.kafka.partitioner import partition_for
from computeinfra.protocol import PENDING_TOPIC
from tests.helpers import Stack, run_cli, wait_for

TIMEOUT = 120


def snapshot(stack: Stack) -> dict:
    return analyzer_snapshot(stack.settings)


def test_counts_and_timings_match_what_was_submitted(stack: Stack, client: Client) -> None:
    before = snapshot(stack)["tasks"].get("word-count", {})
    producer = make_producer(stack.settings.bootstrap_servers)
    good = [client.submit("word-count", {"text": f"w {i}"}, "analyzer/ok") for i in range(12)]
    for i in range(3):
        producer.produce(
            PENDING_TOPIC,
            key=f"an-bad-{i}-{good[0].key}".encode(),
            value=b'{"task": "word-count", "payload": {}, "result_dir": "x"}',
        )
    assert producer.flush(30) == 0
    for handle in good:
        handle.result(TIMEOUT)

    def settled() -> dict | None:
        now = snapshot(stack)["tasks"].get("word-count", {})
        done = now.get("succeeded", 0) - before.get("succeeded", 0)
        rejected = now.get("rejected", 0) - before.get("rejected", 0)
        read = now.get("requests_read", 0) - before.get("requests_read", 0)
        return now if (done, rejected, read) == (12, 3, 15) else None

    after = wait_for(settled, TIMEOUT, "the analyzer to read 15 requests and their answers")
    assert after["submitted"] - before.get("submitted", 0) == 15
    assert after["failed"] == before.get("failed", 0)
    assert after["in_flight"] == 0
    assert after["run_time"]["count"] >= 12
    assert after["run_time"]["p50"] is not None and after["run_time"]["p50"] >= 0
    assert after["queue_wait"]["p99"] >= after["queue_wait"]["p50"] >= 0


def test_stats_cli_reports_throughput_and_backlog(stack: Stack, client: Client) -> None:
    client.submit("sleep", {"seconds": 0}, "analyzer/one").result(TIMEOUT)
    wait_for(lambda: snapshot(stack)["throughput"]["last_minute"], TIMEOUT, "a counted job")
    data = json.loads(run_cli("stats", "--json", env=stack.env, check=True).stdout)
    assert data["throughput"]["last_minute"] >= 1
    assert data["backlog"] is not None and data["backlog"] >= 0
    assert data["totals"]["submitted"] >= data["totals"]["succeeded"]


def test_a_record_without_a_key_is_never_counted_in_flight(stack: Stack) -> None:
    """A keyless record is dead-lettered (no completion can answer it): counted as a job
    submitted, it stayed in flight for good (found by the chaos test run after
    test_rejections)."""
    task = f"no-key-{uuid.uuid4().hex[:8]}"  # a task of this test alone: rejected, unknown
    key = f"an-keyed-{task}".encode()
    producer = make_producer(stack.settings.bootstrap_servers)
    count = partition_count(producer, PENDING_TOPIC)
    value = json.dumps({"task": task, "payload": {}, "result_dir": "x"}).encode()
    # Both on one partition, the keyless first: once the keyed job is counted, so is it.
    partition = partition_for(key, count)
    producer.produce(PENDING_TOPIC, key=None, value=value, partition=partition)
    producer.produce(PENDING_TOPIC, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0

    def counted() -> dict | None:
        now = snapshot(stack)["tasks"].get(task, {})
        # The keyless record is no request: read as one, this would never be true.
        return now if (now.get("rejected"), now.get("requests_read")) == (1, 1) else None

    after = wait_for(counted, TIMEOUT, "the analyzer to count the keyed job and its rejection")
    assert (after["submitted"], after["in_flight"]) == (1, 0)
