"""A job's lookup when the broker leaves a metadata request unanswered.

The chaos test once failed so (CI of 11ce876): just after its broker restart, a cancel said
of a job it had submitted "no job has the key": the lookup gave up on ``pendingJobs``'s
metadata, took the failure for a topic an older cluster never created, and answered from
the other topics alone. Here a proxy drops the broker's answer to the lookup's metadata
request for ``pendingJobs``: a lookup must then ask again, or say it could not read the
topic, and never call a queued job unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from computeinfra.client.lookup import job_states
from computeinfra.errors import KafkaError
from computeinfra.kafka import clients
from computeinfra.kafka.admin import ensure_topics
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import PENDING_TOPIC, JobRequest, JobState, encode_request
from computeinfra.testing.stack import settings_under
from tests.kafka_proxy import METADATA, KafkaProxy, proxied_broker

KEYS = [f"queued-{n}" for n in range(4)]


@pytest.fixture
def queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaProxy]:
    """Jobs queued (and nothing else) on a broker reached through a proxy."""
    # An unanswered metadata request costs the lookup this long, not 10 s.
    monkeypatch.setattr(clients, "METADATA_TIMEOUT_SECONDS", 2.0)
    with proxied_broker(tmp_path) as running:
        bootstrap = f"127.0.0.1:{running.port}"
        ensure_topics(settings_under({"COMPUTEINFRA_BOOTSTRAP": bootstrap}))
        producer = make_producer(bootstrap)
        request = encode_request(JobRequest(task="sleep", payload={}, result_dir="queued"))
        for key in KEYS:
            producer.produce(PENDING_TOPIC, request, key=key.encode())
        assert producer.flush(30) == 0
        yield running


def test_a_queued_job_is_never_unknown_when_its_topic_goes_unanswered(
    queued: KafkaProxy,
) -> None:
    # librdkafka itself sends an unanswered metadata request again, once or twice.
    queued.drop_answers(METADATA, PENDING_TOPIC, times=3)
    found = job_states(f"127.0.0.1:{queued.port}", KEYS)
    assert queued.dropped == 3  # the lookup's own metadata requests went unanswered
    assert [f.state for f in found] == [JobState.PENDING] * len(KEYS)


def test_a_lookup_the_broker_never_answers_is_a_kafka_error_not_an_unknown_job(
    queued: KafkaProxy,
) -> None:
    queued.drop_answers(METADATA, PENDING_TOPIC, times=1000)
    with pytest.raises(KafkaError, match="pendingJobs"):
        job_states(f"127.0.0.1:{queued.port}", KEYS)
