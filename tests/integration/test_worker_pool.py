"""A block of several workers (``--concurrency``): a long job holds one of them and the
others take the rest, on the real broker, with real transactions."""

from __future__ import annotations

import uuid
from dataclasses import replace

from computeinfra import Client, Status
from computeinfra.block.supervisor import Supervisor
from computeinfra.kafka.admin import ensure_lane_topics
from computeinfra.protocol import lane_topic
from computeinfra.tasks.registry import load_registry
from tests.helpers import Stack, wait_for
from tests.integration.test_drain import _send
from tests.integration.test_supervisor_rejoin import InProcessWorker

TIMEOUT = 60


def test_a_block_of_two_workers_runs_short_jobs_beside_a_long_one(
    stack: Stack, client: Client
) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    settings = replace(stack.settings, group=name, task_modules=())
    topic = lane_topic(name)
    ensure_lane_topics(settings, [topic])
    workers = [InProcessWorker(settings), InProcessWorker(settings)]
    block = Supervisor(
        settings, 0, workers, member_id=name, registry=load_registry(()), topics=(topic,)
    )
    block.start()
    try:
        long = _send(settings, topic, 60.0)
        wait_for(lambda: block.status()["jobs"], TIMEOUT, "the long job to start")
        short = [_send(settings, topic, 0.05) for _ in range(10)]
        done = [client.job(key).completion(TIMEOUT) for key in short]
        assert all(c.status is Status.SUCCEEDED and c.attempts == 1 for c in done)
        assert not client.job(long).done()  # the short ones did not wait for it
        assert len(block.status()["worker_pids"]) == 2
    finally:
        block.stop(0.1)  # the long job is let go unanswered on this private topic
