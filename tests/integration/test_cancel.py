"""Cancelling jobs that wait for a worker (issue #14), on the real stack, from every
surface: the CLI, the HTTP API, the SDK and a plain Kafka client writing to cancelJobs."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from computeinfra import Client, Status
from computeinfra.block.supervisor import Supervisor
from computeinfra.client.lookup import job_state
from computeinfra.kafka.admin import ensure_lane_topics
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import CANCEL_TOPIC, FailureKind, JobState, lane_topic
from computeinfra.tasks.registry import load_registry
from tests.helpers import Stack, completions_for, read_topic, run_cli, wait_for
from tests.integration.sample_middleware import CANCEL_LATE_PREFIX
from tests.integration.test_drain import _send
from tests.integration.test_supervisor_rejoin import InProcessWorker

TIMEOUT = 120
# More gate jobs than the stack has workers: every worker is held, and jobs queue.
GATES = 8


def _cancel_records(stack: Stack, key: str) -> list[bytes | None]:
    bootstrap = stack.settings.bootstrap_servers
    return [v for k, v, _ in read_topic(bootstrap, CANCEL_TOPIC) if k == key.encode()]


def _blocks(stack: Stack) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        run_cli("blocks", "--json", env=stack.env, check=True).stdout
    )
    return rows


def _all_held(stack: Stack) -> bool:
    # A block restarting (or not answering) shows no workers: it is not held.
    rows = _blocks(stack)
    return all(row["worker_pids"] and len(row["jobs"]) == len(row["worker_pids"]) for row in rows)


def _cancels_read(stack: Stack) -> list[int]:
    return [row.get("cancels") or 0 for row in _blocks(stack)]


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
    before = _cancels_read(stack)
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
        # A cancel is not ordered with its job (another topic): the blocks must have read
        # them before a worker is free, or a victim could start first.
        wait_for(
            lambda: all(
                n >= b + len(victims) for n, b in zip(_cancels_read(stack), before, strict=True)
            ),
            TIMEOUT,
            "every block to read the cancels",
        )
    finally:
        # The workers go on to the rest now; a victim still on the topic (its block paused
        # its partitions with gates queued) is answered when read, a queued one at once.
        door.touch()
    done = {how: handle.completion(TIMEOUT) for how, handle in victims.items()}
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


def _running(stack: Stack, key: str) -> bool:
    return job_state(stack.settings.bootstrap_servers, key).state is JobState.RUNNING


def test_running_jobs_are_stopped_whatever_their_code_does_and_what_they_wrote_is_removed(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    # Neither looks at anything: the built-in sleep, and a CPU loop.
    stubborn = [
        client.submit("sleep", {"seconds": 600}, f"cancel/{run}/sleep"),
        client.submit("spin", {"seconds": 600}, f"cancel/{run}/spin"),
    ]
    for handle in stubborn:
        wait_for(lambda h=handle: _running(stack, h.key), TIMEOUT, f"{handle.key} to run")
    keys = [h.key for h in stubborn]
    cli = run_cli("cancel", *keys, "--wait", "--json", "--timeout", "60", env=stack.env)
    assert cli.returncode == 0, cli.stderr
    for line in cli.stdout.splitlines():
        completion = json.loads(line)
        assert (completion["status"], completion["attempts"]) == ("cancelled", 1), completion
        assert completion["finished_at"] - completion["started_at"] < 600
    # Partial outputs: two whole files and one being written, beside another job's file.
    door, folder = tmp_path / "open", f"cancel/{run}/parts"
    neighbour = client.submit("where", {"message": "stays"}, folder)
    assert neighbour.completion(TIMEOUT).status is Status.SUCCEEDED
    writer = client.submit("write-then-wait", {"path": str(door)}, folder)
    written = stack.results / folder
    wait_for(lambda: _running(stack, writer.key), TIMEOUT, "the writer to run")
    wait_for(lambda: (written / "part-1.txt").exists(), TIMEOUT, "its whole parts")
    try:
        assert writer.cancel("partial").requested
        done = writer.completion(TIMEOUT)
    finally:
        door.touch()
    assert (done.status, done.attempts, done.outputs) == (Status.CANCELLED, 1, [])
    assert sorted(p.name for p in written.iterdir()) == ["where.txt"]
    # The blocks go on: a job after the cancels runs, on the restarted workers too.
    after = [client.submit("sleep", {"seconds": 0}, f"cancel/{run}/after") for _ in range(4)]
    assert all(h.completion(TIMEOUT).status is Status.SUCCEEDED for h in after)
    everything = [*keys, writer.key]
    counts = completions_for(stack.settings.bootstrap_servers, everything)
    assert {key: len(found) for key, found in counts.items()} == dict.fromkeys(everything, 1)
    # Counted per task where users look: `stats` and /metrics.
    wait_for(lambda: _stats_cancelled(stack, "spin") >= 1, TIMEOUT, "stats to count it")
    metrics = httpx.get(f"{stack.web_url}/metrics", timeout=30).text
    wanted = ("computeinfra_jobs_completed_total{", 'task="spin"', 'status="cancelled"')
    lines = [m for m in metrics.splitlines() if all(part in m for part in wanted)]
    assert lines and float(lines[0].split()[-1]) >= 1, lines


def _stats_cancelled(stack: Stack, task: str) -> int:
    data = json.loads(run_cli("stats", "--json", env=stack.env, check=True).stdout)
    count: int = data["tasks"].get(task, {}).get("cancelled", 0)
    return count


def test_unfinished_jobs_are_cancelled_by_task_from_the_cli_and_the_http_api(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    door = tmp_path / "open"
    run = uuid.uuid4().hex[:8]
    gates = [client.submit("gate", {"path": str(door)}, f"bulk/{run}/gate") for _ in range(GATES)]
    wait_for(lambda: _all_held(stack), TIMEOUT, "every worker to hold a gate job")
    by_cli = [client.submit("where", {"message": "cli"}, f"bulk/{run}/where") for _ in range(3)]
    by_http = [client.submit("explode", {"message": "x"}, f"bulk/{run}/x") for _ in range(3)]
    kept = [client.submit("sleep", {"seconds": 0}, f"bulk/{run}/kept") for _ in range(3)]
    client.flush()
    before = _cancels_read(stack)
    try:
        neither = run_cli("cancel", env=stack.env)
        assert neither.returncode == 2 and "--task" in neither.stderr, neither
        cli = run_cli("cancel", "--task", "where", "--json", env=stack.env, check=True)
        chosen = [json.loads(line) for line in cli.stdout.splitlines()]
        assert {h.key for h in by_cli} <= {c["key"] for c in chosen}
        assert all(c["cancel"] == "requested" for c in chosen)
        both = httpx.post(f"{stack.web_url}/api/jobs/cancel",
                          json={"keys": [kept[0].key], "task": "sleep"}, timeout=30)  # fmt: skip
        assert both.status_code == 422, both.text
        answer = httpx.post(
            f"{stack.web_url}/api/jobs/cancel",
            json={"task": "explode", "state": "pending", "reason": "bulk"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert {h.key for h in by_http} <= {r["key"] for r in answer.json()["requested"]}
        victims = len(by_cli) + len(by_http)
        wait_for(
            lambda: all(
                n >= b + victims for n, b in zip(_cancels_read(stack), before, strict=True)
            ),
            TIMEOUT,
            "every block to read the cancels",
        )
    finally:
        door.touch()
    for handle in [*by_cli, *by_http]:
        completion = handle.completion(TIMEOUT)
        assert completion.status is Status.CANCELLED and completion.attempts == 0, completion
    assert all(h.completion(TIMEOUT).status is Status.SUCCEEDED for h in [*gates, *kept])
    keys = [h.key for h in [*by_cli, *by_http, *kept]]
    counts = completions_for(stack.settings.bootstrap_servers, keys)
    assert {key: len(found) for key, found in counts.items()} == dict.fromkeys(keys, 1)


def test_a_running_job_that_looks_at_ctx_cancelled_stops_by_itself_and_keeps_its_worker(
    stack: Stack, client: Client
) -> None:
    run = uuid.uuid4().hex[:8]
    handle = client.submit("polite", {"seconds": 600}, f"cancel/{run}/polite")
    wait_for(lambda: _running(stack, handle.key), TIMEOUT, "the polite job to run")
    wait_for(lambda: (stack.results / f"cancel/{run}/polite/begun.txt").exists(), TIMEOUT,
             "its first file")  # fmt: skip
    pids = {row["block"]: sorted(row["worker_pids"]) for row in _blocks(stack)}
    assert handle.cancel("be polite").requested
    done = handle.completion(TIMEOUT)
    assert (done.status, done.attempts, done.outputs) == (Status.CANCELLED, 1, [])
    assert done.error is not None and "be polite" in done.error.message
    assert done.finished_at is not None and done.started_at is not None
    assert done.finished_at - done.started_at < 600
    assert not (stack.results / f"cancel/{run}/polite/begun.txt").exists()
    # It stopped at its own step: no worker process was killed for it.
    assert {row["block"]: sorted(row["worker_pids"]) for row in _blocks(stack)} == pids


def test_a_cancel_of_an_earlier_submission_spares_a_job_resubmitted_under_its_key(
    stack: Stack, client: Client
) -> None:
    # A cancel stays on its compacted topic for good: before, a key used again after a
    # cancel was cancelled at once. Now a cancel names the submission it was asked for.
    spared, doomed = f"again-{uuid.uuid4().hex[:8]}", f"any-{uuid.uuid4().hex[:8]}"
    before = _cancels_read(stack)
    producer = make_producer(stack.settings.bootstrap_servers)
    old = json.dumps({"reason": "the first one", "submitted_at": time.time() - 3600})
    producer.produce(CANCEL_TOPIC, key=spared.encode(), value=old.encode())
    producer.produce(CANCEL_TOPIC, key=doomed.encode(), value=b'{"reason": "any"}')
    assert producer.flush(30) == 0
    wait_for(
        lambda: all(n >= b + 2 for n, b in zip(_cancels_read(stack), before, strict=True)),
        TIMEOUT,
        "every block to read the cancels",
    )
    runs = client.submit("where", {"message": "again"}, "cancel/again", key=spared)
    never = client.submit("where", {"message": "any"}, "cancel/any", key=doomed)
    assert runs.completion(TIMEOUT).status is Status.SUCCEEDED
    assert never.completion(TIMEOUT).status is Status.CANCELLED


def test_a_cancel_acknowledged_after_a_job_ended_but_before_its_answer_committed_wins(
    stack: Stack, client: Client
) -> None:
    """The 202 promise: once a cancel is acknowledged, no completion but ``cancelled`` is
    written for its job. The sample middleware writes the cancel (and waits for Kafka to
    acknowledge it) as the transaction that would commit the job's answer begins: only that
    transaction's own check can catch it, withdraw it, and have the job answered
    ``cancelled``, the attempt it made counted. Before, the job's ``succeeded`` committed
    after the cancel's acknowledgement."""
    key = f"{CANCEL_LATE_PREFIX}{uuid.uuid4().hex[:8]}"
    handle = client.submit("where", {"message": "late"}, "cancel/late", key=key)
    completion = handle.completion(TIMEOUT)
    assert (completion.status, completion.attempts) == (Status.CANCELLED, 1)
    assert completion.error is not None and "late" in completion.error.message
    assert completion.outputs == [] and completion.result is None
    found = completions_for(stack.settings.bootstrap_servers, [key])
    assert [c.status for c in found[key]] == [Status.CANCELLED]
    assert sum(row.get("commits_withdrawn", 0) for row in _blocks(stack)) >= 1
    assert not (stack.results / "cancel" / "late" / "where.txt").exists()  # it wrote, removed
