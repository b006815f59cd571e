"""Worker death: the supervisor notices, Ray restarts the worker, the job is sent again."""

from __future__ import annotations

import json
import os
import signal
import time

from computeinfra import Client, Status
from computeinfra.cluster.launcher import analyzer_snapshot, block_statuses
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import DEAD_TOPIC, PENDING_TOPIC
from tests.helpers import Stack, completions_for, read_topic, wait_for

TIMEOUT = 180


def running(stack: Stack, key: str) -> dict | None:
    for block in block_statuses(stack.settings):
        if block.get("job") == key and block.get("state") == "busy":
            return block
    return None


def test_worker_sigkilled_mid_job_completes_exactly_once(stack: Stack, client: Client) -> None:
    handle = client.submit("sleep", {"seconds": 4}, "recovery/killed")
    block = wait_for(lambda: running(stack, handle.key), TIMEOUT, "the job to start")
    old_pid = block["worker_pid"]
    os.kill(old_pid, signal.SIGKILL)

    completion = handle.result(TIMEOUT)
    assert completion.status is Status.SUCCEEDED
    assert completion.attempts == 2
    assert completion.block == block["block"]
    found = completions_for(stack.settings.bootstrap_servers, [handle.key])[handle.key]
    assert len(found) == 1

    def new_worker() -> int | None:
        (now,) = [b for b in block_statuses(stack.settings) if b["block"] == block["block"]]
        return now["worker_pid"] if now["worker_pid"] not in (None, old_pid) else None

    assert wait_for(new_worker, TIMEOUT, "the restarted worker's pid") != old_pid


def test_poison_job_fails_after_max_attempts_and_the_block_recovers(
    stack: Stack, client: Client
) -> None:
    poison = client.submit("always-crash", {}, "recovery/poison")
    completion = poison.completion(TIMEOUT)
    assert completion.status is Status.FAILED
    assert completion.error.type == "WorkerLost"
    assert completion.attempts == stack.settings.max_attempts
    assert "died during attempt 3" in completion.error.message
    # The same blocks keep working afterwards.
    after = [client.submit("sleep", {"seconds": 0}, "recovery/after") for _ in range(4)]
    assert all(h.result(TIMEOUT).ok for h in after)


def test_analyzer_counted_the_worker_restarts(stack: Stack) -> None:
    snapshot = analyzer_snapshot(stack.settings)
    assert snapshot["worker_restarts"]["total"] >= 1


def test_supervisor_sigkilled_mid_job_answers_exactly_once(stack: Stack, client: Client) -> None:
    handle = client.submit("sleep", {"seconds": 3}, "recovery/supervisor")
    block = wait_for(lambda: running(stack, handle.key), TIMEOUT, "the job to start")
    os.kill(block["supervisor_pid"], signal.SIGKILL)

    completion = handle.result(TIMEOUT)
    assert completion.status is Status.SUCCEEDED
    # The restarted supervisor may answer an aborted attempt's job again, but a
    # read_committed reader sees exactly one completion.
    found = completions_for(stack.settings.bootstrap_servers, [handle.key])[handle.key]
    assert len(found) == 1

    def restarted() -> dict | None:
        (now,) = [b for b in block_statuses(stack.settings) if b["block"] == block["block"]]
        fresh = now.get("supervisor_pid") not in (None, block["supervisor_pid"])
        return now if fresh and now["state"] == "idle" else None

    wait_for(restarted, TIMEOUT, "the supervisor to come back")
    after = [client.submit("sleep", {"seconds": 0}, "recovery/after-sup") for _ in range(6)]
    assert all(h.result(TIMEOUT).ok for h in after)


def test_time_limit_kills_the_attempt_and_the_job_fails_timed_out(
    stack: Stack, client: Client
) -> None:
    key = f"slow-{os.getpid()}-{int(time.time())}"
    produce(
        stack,
        key,
        {
            "task": "sleep",
            "payload": {"seconds": 60},
            "result_dir": "limits",
            "time_limit": 1,
            "max_attempts": 2,
        },
    )
    completion = client.job(key).completion(TIMEOUT)
    assert completion.status is Status.FAILED
    assert completion.error.type == "TimeLimitExceeded"
    assert completion.attempts == 2
    assert "time limit of 1 s" in completion.error.message
    assert completion.finished_at - completion.started_at < 30


def test_task_asking_for_a_retry_succeeds_on_a_later_attempt(stack: Stack, client: Client) -> None:
    completion = client.submit("flaky", {"succeed_on": 3}, "limits/flaky").result(TIMEOUT)
    assert completion.attempts == 3
    assert completion.result == {"attempt": 3}


def test_poison_job_is_dead_lettered_with_its_reason(stack: Stack, client: Client) -> None:
    poison = client.submit("always-crash", {"message": "dead-letter-me"}, "recovery/dlq")
    assert poison.completion(TIMEOUT).status is Status.FAILED

    def dead() -> list:
        return [
            r
            for r in read_topic(stack.settings.bootstrap_servers, DEAD_TOPIC)
            if r[0] == poison.key.encode()
        ]

    ((_key, value, headers),) = wait_for(dead, TIMEOUT, "the dead letter")
    assert json.loads(value)["payload"] == {"message": "dead-letter-me"}
    header = dict(headers)
    assert header["computeinfra.reason"].startswith(b"WorkerLost")
    assert header["computeinfra.attempts"] == b"3"


def produce(stack: Stack, key: str, body: dict) -> None:
    producer = make_producer(stack.settings.bootstrap_servers)
    producer.produce(PENDING_TOPIC, key=key.encode(), value=json.dumps(body).encode())
    assert producer.flush(30) == 0
