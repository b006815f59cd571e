"""Drain (issue #13): a stopping block takes no new record, lets its running job end and
commits it; a job still running when the drain time is up is let go unanswered, and the
partition's next owner runs it: one completion either way."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from computeinfra import Client, Status
from computeinfra.block.supervisor import Supervisor
from computeinfra.config import Settings
from computeinfra.kafka.admin import ensure_lane_topics
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import JobRequest, encode_request, lane_topic
from computeinfra.tasks.registry import load_registry
from tests.helpers import Stack, completions_for, wait_for
from tests.integration.test_supervisor_rejoin import InProcessWorker

TIMEOUT = 60


def _block(settings: Settings, topic: str, name: str) -> Supervisor:
    supervisor = Supervisor(
        settings,
        0,
        [InProcessWorker(settings)],
        member_id=name,
        registry=load_registry(()),
        topics=(topic,),
    )
    supervisor.start()
    return supervisor


@pytest.fixture
def lone(stack: Stack) -> Iterator[tuple[Settings, str]]:
    name = f"drain-{uuid.uuid4().hex[:8]}"
    settings = replace(stack.settings, group=name, task_modules=())
    ensure_lane_topics(settings, [lane_topic(name)])
    yield settings, lane_topic(name)


def _send(settings: Settings, topic: str, seconds: float) -> str:
    key = f"drain-{uuid.uuid4().hex[:8]}"
    request = JobRequest(task="sleep", payload={"seconds": seconds}, result_dir="drain")
    producer = make_producer(settings.bootstrap_servers)
    producer.produce(topic, key=key.encode(), value=encode_request(request))
    assert producer.flush(30) == 0
    return key


def _stop_in_background(block: Supervisor, drain: float | None) -> threading.Thread:
    thread = threading.Thread(target=block.stop, args=(drain,), daemon=True)
    thread.start()
    return thread


def test_a_stopping_block_lets_its_running_job_end_and_commits_it(
    client: Client, lone: tuple[Settings, str]
) -> None:
    settings, topic = lone
    block = _block(settings, topic, f"{topic}-a")
    key = _send(settings, topic, 3.0)
    wait_for(lambda: block.status()["jobs"], TIMEOUT, "the job to start")
    stopping = _stop_in_background(block, None)  # by default: the job's remaining limit
    stopping.join(TIMEOUT)
    assert not stopping.is_alive()
    completion = client.job(key).completion(TIMEOUT)
    assert (completion.status, completion.attempts) == (Status.SUCCEEDED, 1)


def test_a_job_past_the_drain_is_let_go_and_runs_once_on_the_next_owner(
    stack: Stack, client: Client, lone: tuple[Settings, str]
) -> None:
    settings, topic = lone
    first = _block(settings, topic, f"{topic}-a")
    key = _send(settings, topic, 4.0)
    wait_for(lambda: first.status()["jobs"], TIMEOUT, "the job to start")
    stopping = _stop_in_background(first, 0.2)
    stopping.join(TIMEOUT)
    assert not stopping.is_alive()
    assert completions_for(stack.settings.bootstrap_servers, [key]).get(key, []) == []
    second = _block(settings, topic, f"{topic}-b")
    try:
        completion = client.job(key).completion(TIMEOUT)
    finally:
        second.stop(0)
    # The attempt the drain cut short counts once: the next owner's is the second.
    assert (completion.status, completion.attempts) == (Status.SUCCEEDED, 2)
    assert len(completions_for(stack.settings.bootstrap_servers, [key])[key]) == 1
