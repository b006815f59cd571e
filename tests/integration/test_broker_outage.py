"""A broker away while a job ends (issue #13, defect 5).

A job ends while its block's broker is down: its commit cannot go through. That once could
end the consume thread for good (a ``KafkaException`` from the producer made to replace the
failed one) while its actor lived on. Now the transaction is tried again until the broker
is back, and a round that still dies is started again (``test_middleware``). Here the
supervisor runs in this process against a broker of its own, so the outage touches nothing
else of the session: once the broker is back, the job gets exactly one completion and the
block goes on consuming.
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
from computeinfra.kafka.broker import LocalBroker
from computeinfra.tasks.registry import load_registry
from computeinfra.testing.stack import running_broker, settings_under
from tests.helpers import completions_for, wait_for
from tests.integration.test_supervisor_rejoin import InProcessWorker

# A transaction times out after 15 s with no broker to reach.
FAILED_COMMIT_SECONDS = 120.0
ANSWER_SECONDS = 180.0
JOB_SECONDS = 5.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, Settings]]:
    with running_broker(tmp_path) as broker:
        settings = settings_under(
            {
                "COMPUTEINFRA_BOOTSTRAP": broker.config.bootstrap,
                "COMPUTEINFRA_RESULTS_ROOT": str(tmp_path / "results"),
                "COMPUTEINFRA_TASKS": "",
            }
        )
        ensure_topics(settings)
        yield broker, settings


def test_a_job_ending_during_a_broker_outage_is_answered_once_when_it_is_back(
    own_broker: tuple[LocalBroker, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    broker, settings = own_broker
    supervisor = Supervisor(
        settings,
        0,
        [InProcessWorker(settings)],
        member_id=f"outage-{uuid.uuid4().hex[:8]}",
        registry=load_registry(()),
    )
    supervisor.start()
    client = Client(settings=settings)
    try:
        warm = client.submit("sleep", {"seconds": 0}, "outage/warm")
        assert warm.result(ANSWER_SECONDS).status is Status.SUCCEEDED

        key = f"outage-{uuid.uuid4().hex[:8]}"
        handle = client.submit("sleep", {"seconds": JOB_SECONDS}, f"outage/{key}", key=key)
        wait_for(lambda: key in supervisor.status()["jobs"], ANSWER_SECONDS, "the job to run")
        broker.stop()  # the job ends with no broker to commit its answer to
        wait_for(
            lambda: "transaction failed" in caplog.text, FAILED_COMMIT_SECONDS, "a failed commit"
        )

        broker.start()
        assert handle.result(ANSWER_SECONDS).status is Status.SUCCEEDED
        after = client.submit("sleep", {"seconds": 0}, "outage/after")
        assert after.result(ANSWER_SECONDS).status is Status.SUCCEEDED  # still consuming
        keys = [key, warm.key, after.key]
        found = completions_for(settings.bootstrap_servers, keys)
        assert {k: len(v) for k, v in found.items()} == dict.fromkeys(keys, 1)
    finally:
        client.close()
        supervisor.stop()
