"""Hostile records straight onto pendingJobs: each is answered, nothing crashes or stalls."""

from __future__ import annotations

from computeinfra import Client
from computeinfra.cluster.launcher import block_statuses
from tests.fuzz import run_fuzz
from tests.helpers import Stack

RECORDS = 300


def test_fuzzed_records_are_all_rejected_and_no_supervisor_dies(
    stack: Stack, client: Client
) -> None:
    pids_before = {b["block"]: b["supervisor_pid"] for b in block_statuses(stack.settings)}
    report = run_fuzz(stack, client, RECORDS)
    assert report["records"] == RECORDS
    assert report["answered_more_than_once"] == []
    assert report["dead_letters"] >= report["keyless"]
    pids_after = {b["block"]: b["supervisor_pid"] for b in block_statuses(stack.settings)}
    assert pids_after == pids_before, "a supervisor process died while handling fuzz records"
