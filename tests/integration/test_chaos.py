"""Kill workers and supervisors at random and restart the broker while 1,000 jobs run and
some of them are cancelled."""

from __future__ import annotations

import pytest

from computeinfra import Client
from tests.chaos import run_chaos
from tests.helpers import Stack

JOBS = 1000
KILLS = 10


@pytest.mark.timeout(900)
def test_chaos_every_job_answered_exactly_once(stack: Stack, client: Client) -> None:
    report = run_chaos(stack, client, JOBS, KILLS)
    assert report.problems == []
    assert len(report.kills) >= KILLS - 2  # a target can be mid-restart and skipped
    assert report.broker_restarts == 1
    assert sum(report.statuses.values()) == JOBS
    # Cancels write only for jobs not completed yet; at least the 1 s jobs are not.
    assert report.cancels >= 5 and report.statuses["cancelled"] >= 1
    assert report.statuses["succeeded"] >= (JOBS - report.cancels) * 0.95
