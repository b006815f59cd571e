"""Cancelling jobs that wait for a worker (issue #14), on the real stack, from every
surface: the CLI, the HTTP API, the SDK and a plain Kafka client writing to cancelJobs."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import httpx

from computeinfra import Client, Status
from computeinfra.block.supervisor import Supervisor
from computeinfra.kafka.admin import ensure_lane_topics
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import CANCEL_TOPIC, FailureKind, lane_topic
from computeinfra.tasks.registry import load_registry
from tests.helpers import Stack, completions_for, read_topic, run_cli, wait_for
from tests.integration.test_drain import _send
from tests.integration.test_supervisor_rejoin import InProcessWorker

TIMEOUT = 120
# More gate jobs than the stack has workers: every worker is held, and jobs queue.
GATES = 8


def _cancel_records(stack: Stack, key: str) -> list[bytes | None]:
    bootstrap = stack.settings.bootstrap_servers
    return [v for k, v, _ in read_topic(bootstrap, CANCEL_TOPIC) if k == key.encode()]


def _all_held(stack: Stack) -> bool:
    rows = json.loads(run_cli("blocks", "--json", env=stack.env, check=True).stdout)
    # A block restarting (or not answering) shows no workers: it is not held.
    return all(row["worker_pids"] and len(row["jobs"]) == len(row["worker_pids"]) for row in rows)


def test_jobs_waiting_for_a_worker_are_cancelled_from_every_surface_and_never_run(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    door = tmp_path / "open"
    run = uuid.uuid4().hex[:8]
    gates = [client.submit("gate", {"path": str(door)}, f"cancel/{run}/gate") for _ in range(GATES)]
    # Records of different partitions come in any order: the victims are sent once every
    # worker is held, so they wait in a queue.
    wait_for(lambda: _all_held(stack), TIMEOUT, "every worker to hold a gate job")
    victims = {
        how: client.submit("where", {"message": how}, f"cancel/{run}/{how}")
        for how in ("cli", "http", "sdk", "kafka")
    }
    client.flush()
    try:
        cli = run_cli("cancel", victims["cli"].key, "--json", env=stack.env, check=True)
        assert json.loads(cli.stdout)["cancel"] == "requested", cli.stdout
        answer = httpx.post(
            f"{stack.web_url}/api/jobs/{victims['http'].key}/cancel",
            json={"reason": "from the web"},
            timeout=30,
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["state"] in ("pending", "running")
        assert victims["sdk"].cancel("from the sdk").requested
        producer = make_producer(stack.settings.bootstrap_servers)
        raw = victims["kafka"].key.encode()
        producer.produce(CANCEL_TOPIC, key=raw, value=b'{"reason": "raw"}')
        assert producer.flush(30) == 0
        done = {how: handle.completion(TIMEOUT) for how, handle in victims.items()}
    finally:
        door.touch()
    for how, completion in done.items():
        assert completion.status is Status.CANCELLED, (how, completion)
        assert completion.attempts == 0 and completion.started_at is None
        assert completion.error is not None and completion.error.type == FailureKind.CANCELLED
        # Never ran: the task writes where.txt first thing.
        assert not (stack.results / f"cancel/{run}/{how}").exists()
    assert "from the web" in (done["http"].error.message if done["http"].error else "")
    assert "raw" in (done["kafka"].error.message if done["kafka"].error else "")
    assert all(g.completion(TIMEOUT).status is Status.SUCCEEDED for g in gates)
    keys = [h.key for h in victims.values()]
    counts = completions_for(stack.settings.bootstrap_servers, keys)
    assert {key: len(found) for key, found in counts.items()} == dict.fromkeys(keys, 1)


def test_a_completed_job_keeps_its_completion_and_an_unknown_key_writes_nothing(
    stack: Stack, client: Client
) -> None:
    finished = client.submit("sleep", {"seconds": 0}, "cancel/done")
    assert finished.completion(TIMEOUT).status is Status.SUCCEEDED
    cli = run_cli("cancel", finished.key, env=stack.env, check=True)
    assert "succeeded already" in cli.stdout
    answer = httpx.post(f"{stack.web_url}/api/jobs/{finished.key}/cancel", timeout=30)
    assert answer.status_code == 409, answer.text
    assert answer.json()["job"]["state"] == "succeeded"
    assert not finished.cancel().requested
    unknown = f"no-such-{uuid.uuid4().hex[:8]}"
    both = run_cli("cancel", unknown, finished.key, env=stack.env)
    assert both.returncode == 2 and "no job has the key" in both.stderr, both
    missing = httpx.post(f"{stack.web_url}/api/jobs/{unknown}/cancel", timeout=30)
    assert missing.status_code == 404 and "no job" in missing.json()["message"]
    assert _cancel_records(stack, finished.key) == [] and _cancel_records(stack, unknown) == []
    # The cancels asked for nothing: still the one completion.
    assert len(completions_for(stack.settings.bootstrap_servers, [finished.key])[finished.key]) == 1


def test_a_block_started_after_a_cancel_never_runs_the_job_it_names(
    stack: Stack, client: Client
) -> None:
    """The cancel holds across restarts: a block that starts (or starts again) reads every
    cancel on the topic before it takes a record, so a job cancelled while no block ran
    never runs, even when its record comes first in the block's first poll."""
    name = f"cancel-{uuid.uuid4().hex[:8]}"
    settings = replace(stack.settings, group=name, task_modules=())
    topic = lane_topic(name)
    ensure_lane_topics(settings, [topic])
    doomed, spared = _send(settings, topic, 0.0), _send(settings, topic, 0.0)
    producer = make_producer(settings.bootstrap_servers)
    producer.produce(CANCEL_TOPIC, key=doomed.encode(), value=b"{}")
    assert producer.flush(30) == 0
    block = Supervisor(
        settings, 0, [InProcessWorker(settings)], member_id=name, registry=load_registry(()),
        topics=(topic,),
    )  # fmt: skip
    block.start()
    try:
        cancelled = client.job(doomed).completion(TIMEOUT)
        ran = client.job(spared).completion(TIMEOUT)
    finally:
        block.stop(5.0)
    assert (cancelled.status, cancelled.attempts) == (Status.CANCELLED, 0)
    assert (ran.status, ran.attempts) == (Status.SUCCEEDED, 1)
