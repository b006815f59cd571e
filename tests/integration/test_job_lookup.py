"""A key's state read from Kafka (`status KEY`, `GET /api/jobs/{key}`), against the broker."""

from __future__ import annotations

from typing import Any

import pytest

from computeinfra import Client, Status
from computeinfra.client import lookup
from computeinfra.protocol import COMPLETED_TOPIC, JOB_STATUS_TOPIC, JobState, decode_job_status
from tests.helpers import Stack, wait_for

TIMEOUT = 120


def test_terminal_status_without_its_completion_reads_the_completion_again(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The completion and the terminal status commit in one transaction, but a lookup reads
    each topic's end at its own moment: the transaction can land in between. Simulated by
    dropping the completion from the first read; the lookup must still return it."""
    # Long enough to be shown running: its terminal status then replaces that.
    handle = client.submit("sleep", {"seconds": 1}, "lookup/late")
    assert handle.result(TIMEOUT).status is Status.SUCCEEDED
    real, calls = lookup.find_last_of, []

    def first_read_misses_the_completion(*args: Any) -> dict[str, dict[str, lookup.Found]]:
        found = real(*args)
        calls.append(args)
        if len(calls) == 1:
            for by_topic in found.values():
                by_topic.pop(COMPLETED_TOPIC, None)
        return found

    monkeypatch.setattr(lookup, "find_last_of", first_read_misses_the_completion)
    state = lookup.job_state(stack.settings.bootstrap_servers, handle.key)

    assert state.state is JobState.SUCCEEDED
    assert state.completion is not None and state.completion.key == handle.key
    assert len(calls) == 2


def test_a_quick_job_writes_no_status_and_a_long_one_running_then_its_terminal_state(
    stack: Stack, client: Client
) -> None:
    """A job shorter than ``COMPUTEINFRA_RUNNING_STATUS_AFTER_MS`` goes from pending to its
    completion: its transaction writes to ``completedJobs`` alone. A longer one is shown
    running, and its terminal status replaces that."""
    bootstrap = stack.settings.bootstrap_servers
    quick = client.submit("sleep", {"seconds": 0}, "lookup/quick")
    # Alone first: queued behind the slow one on a block's only worker, it would be handed
    # over to another block after 2 s, and a job handed over gets its terminal status.
    assert quick.result(TIMEOUT).status is Status.SUCCEEDED
    slow = client.submit("sleep", {"seconds": 2}, "lookup/slow")
    wait_for(
        lambda: (
            (found := lookup.find_last(bootstrap, JOB_STATUS_TOPIC, slow.key)) is not None
            and decode_job_status(found[0]).state is JobState.RUNNING
        ),
        TIMEOUT,
        "the slow job's running status",
    )
    assert slow.result(TIMEOUT).status is Status.SUCCEEDED
    assert lookup.find_last(bootstrap, JOB_STATUS_TOPIC, quick.key) is None
    found = lookup.find_last(bootstrap, JOB_STATUS_TOPIC, slow.key)
    assert found is not None and decode_job_status(found[0]).state is JobState.SUCCEEDED
    assert lookup.job_state(bootstrap, quick.key).state is JobState.SUCCEEDED
