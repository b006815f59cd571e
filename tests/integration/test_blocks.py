"""Working blocks share the pendingJobs partitions through one consumer group."""

from __future__ import annotations

import json

from computeinfra import Client
from tests.helpers import Stack, run_cli, wait_for

TIMEOUT = 120


def test_blocks_json_lists_every_block(stack: Stack) -> None:
    result = run_cli("blocks", "--json", env=stack.env, check=True)
    blocks = json.loads(result.stdout)
    assert [b["block"] for b in blocks] == [0, 1]
    for block in blocks:
        assert {"block", "node", "supervisor_pid", "worker_pid", "state", "job"} <= set(block)
        assert block["supervisor_pid"] != block["worker_pid"]
        assert block["node"]


def test_two_supervisors_share_the_partitions(stack: Stack, client: Client) -> None:
    def assigned() -> list[dict] | None:
        blocks = json.loads(run_cli("blocks", "--json", env=stack.env, check=True).stdout)
        return blocks if all(b["partitions"] for b in blocks) else None

    blocks = wait_for(assigned, TIMEOUT, "both blocks to own partitions", interval=1)
    owned = [set(b["partitions"]) for b in blocks]
    assert owned[0].isdisjoint(owned[1])
    assert owned[0] | owned[1] == set(range(stack.settings.partitions))

    handles = [client.submit("sleep", {"seconds": 0.05}, "blocks/share") for _ in range(40)]
    answered_by = {h.result(TIMEOUT).block for h in handles}
    assert answered_by == {0, 1}
