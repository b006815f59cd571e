"""A key's state read from Kafka (`status KEY`, `GET /api/jobs/{key}`), against the broker."""

from __future__ import annotations

from typing import Any

import pytest

from computeinfra import Client, Status
from computeinfra.client import lookup
from computeinfra.protocol import COMPLETED_TOPIC, JobState
from tests.helpers import Stack

TIMEOUT = 120


def test_terminal_status_without_its_completion_reads_the_completion_again(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The completion and the terminal status commit in one transaction, but a lookup reads
    each topic's end at its own moment: the transaction can land in between. Simulated by
    dropping the completion from the first read; the lookup must still return it."""
    handle = client.submit("sleep", {"seconds": 0}, "lookup/late")
    assert handle.result(TIMEOUT).status is Status.SUCCEEDED
    real, calls = lookup.find_last_in, []

    def first_read_misses_the_completion(*args: Any) -> dict[str, lookup.Found]:
        found = real(*args)
        calls.append(args)
        if len(calls) == 1:
            found.pop(COMPLETED_TOPIC, None)
        return found

    monkeypatch.setattr(lookup, "find_last_in", first_read_misses_the_completion)
    state = lookup.job_state(stack.settings.bootstrap_servers, handle.key)

    assert state.state is JobState.SUCCEEDED
    assert state.completion is not None and state.completion.key == handle.key
    assert len(calls) == 2
