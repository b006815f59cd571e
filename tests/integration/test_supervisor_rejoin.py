"""A supervisor whose consumer dies for good (fenced static member) joins again and goes on.

After a broker loss a static member can be fenced by its own rejoin; librdkafka then puts
the consumer in a fatal state. Here the fence is made on purpose: a second consumer joins
the group with the supervisor's ``group.instance.id``. The supervisor runs in this process
on a private lane topic and group, so the session's stack never sees these records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from computeinfra import Client, Status
from computeinfra.block.membership import make_supervisor_consumer
from computeinfra.block.supervisor import Supervisor
from computeinfra.block.worker import Worker
from computeinfra.config import Settings
from computeinfra.kafka.admin import ensure_lane_topics
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import JobRequest, encode_request, lane_topic
from computeinfra.tasks.registry import load_registry
from tests.fakes import ThreadWorker
from tests.helpers import Stack, completions_for, wait_for

TIMEOUT = 120


class InProcessWorker(ThreadWorker):
    """The worker port over a thread: this test is about the consumer, not the worker."""

    def __init__(self, settings: Settings) -> None:
        self.worker = Worker(settings, 0)
        super().__init__(lambda jobs: [self.worker.run(job) for job in jobs])

    def kill(self) -> None:
        raise AssertionError("the worker is never killed in this test")

    def describe(self, timeout: float) -> dict[str, Any]:
        return self.worker.describe()


@pytest.fixture
def lone_supervisor(stack: Stack) -> Iterator[Supervisor]:
    name = f"rejoin-{uuid.uuid4().hex[:8]}"
    settings = replace(stack.settings, group=name, task_modules=())
    ensure_lane_topics(settings, [lane_topic(name)])
    supervisor = Supervisor(
        settings,
        0,
        [InProcessWorker(settings)],
        member_id=f"{name}-member",
        registry=load_registry(()),
        topics=(lane_topic(name),),
    )
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()


def _send(settings: Settings, topic: str, key: str) -> None:
    producer = make_producer(settings.bootstrap_servers)
    request = JobRequest(task="sleep", payload={"seconds": 0}, result_dir=f"rejoin/{key}")
    producer.produce(topic, key=key.encode(), value=encode_request(request))
    assert producer.flush(30) == 0


def _fence(supervisor: Supervisor) -> None:
    """Join the group with the supervisor's own instance id, which fences it."""
    intruder = make_supervisor_consumer(supervisor.settings, supervisor.group_instance_id)
    assigned: list[object] = []
    intruder.subscribe(list(supervisor.topics), on_assign=lambda _c, parts: assigned.extend(parts))

    def joined() -> bool:
        intruder.poll(0.2)  # serves the join; its records are not read here
        return bool(assigned)

    try:
        wait_for(joined, TIMEOUT, "the intruder to take the supervisor's seat")
    finally:
        intruder.close()


def test_fenced_supervisor_joins_again_and_answers(
    stack: Stack, client: Client, lone_supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    topic = lone_supervisor.topics[0]
    first = f"rejoin-first-{uuid.uuid4().hex[:8]}"
    handle = client.job(first)
    _send(stack.settings, topic, first)
    assert handle.result(TIMEOUT).status is Status.SUCCEEDED

    _fence(lone_supervisor)
    wait_for(lambda: "joining again" in caplog.text, TIMEOUT, "the supervisor to notice the fence")
    second = f"rejoin-second-{uuid.uuid4().hex[:8]}"
    handle = client.job(second)
    _send(stack.settings, topic, second)

    assert handle.result(TIMEOUT).status is Status.SUCCEEDED
    found = completions_for(stack.settings.bootstrap_servers, [first, second])
    assert {key: len(found[key]) for key in (first, second)} == {first: 1, second: 1}
    assert lone_supervisor.status()["lanes"] == [f"{topic}:0"]
