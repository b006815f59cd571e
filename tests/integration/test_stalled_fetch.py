"""A block whose committed-offset query fails still consumes (librdkafka #5586).

In CI a VM froze for 56 s; the broker, fenced by its own controller on waking, unloaded the
group and loaded it again, and a supervisor's OffsetFetch in between was answered
``NOT_COORDINATOR``. librdkafka never asks again: the block held its partitions and fetched
nothing from them for good. Here a proxy in front of a broker of the test's own gives that
answer to the supervisor's first OffsetFetch, and the jobs must still be answered, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from computeinfra import Client, Status
from computeinfra.block.supervisor import Supervisor
from computeinfra.config import Settings
from computeinfra.kafka.admin import ensure_topics
from computeinfra.tasks.registry import load_registry
from computeinfra.testing.stack import settings_under
from tests.helpers import completions_for, wait_for
from tests.integration.test_supervisor_rejoin import InProcessWorker
from tests.kafka_proxy import KafkaProxy, proxied_broker

# The supervisor joins again after stalled.STALLED_SECONDS (30 s) without a fetch.
ANSWER_SECONDS = 150.0
JOBS = 6


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[KafkaProxy, Settings]]:
    with proxied_broker(tmp_path) as running:
        settings = settings_under(
            {
                "COMPUTEINFRA_BOOTSTRAP": f"127.0.0.1:{running.port}",
                "COMPUTEINFRA_RESULTS_ROOT": str(tmp_path / "results"),
                "COMPUTEINFRA_TASKS": "",
            }
        )
        ensure_topics(settings)
        yield running, settings


def test_a_block_whose_offset_query_fails_still_answers_every_job(
    proxied: tuple[KafkaProxy, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    kafka, settings = proxied
    client = Client(settings=settings)
    handles = [
        client.submit("sleep", {"seconds": 0}, f"stalled/{n}", key=f"stalled-{n}")
        for n in range(JOBS)
    ]
    kafka.fail_offset_fetch(settings.group)
    supervisor = Supervisor(
        settings,
        0,
        [InProcessWorker(settings)],
        member_id=f"stalled-{uuid.uuid4().hex[:8]}",
        registry=load_registry(()),
    )
    supervisor.start()
    try:
        wait_for(
            lambda: "Failed to fetch committed offsets" in caplog.text,
            ANSWER_SECONDS,
            "the supervisor's offset query to fail",
        )
        assert kafka.replaced == [settings.group]
        for handle in handles:
            assert handle.result(ANSWER_SECONDS).status is Status.SUCCEEDED
        assert "librdkafka #5586" in caplog.text  # joined again, for that reason
        keys = [handle.key for handle in handles]
        found = completions_for(settings.bootstrap_servers, keys)
        assert {k: len(v) for k, v in found.items()} == dict.fromkeys(keys, 1)
    finally:
        client.close()
        supervisor.stop()
