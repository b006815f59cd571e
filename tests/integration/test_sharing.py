"""A block with a queue shares it with a block whose workers are idle (issue #15): jobs
whose keys all land on one block's partitions end on both blocks, each once.

Before this, the other block sat idle until the last of them ended on the first (unless
the first's workers were held by one job for ``COMPUTEINFRA_HANDOVER_SECONDS``)."""

from __future__ import annotations

import uuid
from collections import Counter

from computeinfra import Client, Status
from computeinfra.cluster.launcher import block_statuses
from computeinfra.kafka.partitioner import partition_for
from computeinfra.testing.stack import DevStack
from tests.helpers import completions_for, wait_for

JOBS = 20
SECONDS = 0.3  # each; 6 s of work on one worker
TIMEOUT = 120


def _owners(stack: DevStack) -> dict[int, set[int]]:
    rows = block_statuses(stack.settings)
    return {row["block"]: set(row.get("partitions") or []) for row in rows}


def test_jobs_on_one_blocks_partitions_end_on_both_each_once(
    stack: DevStack, client: Client
) -> None:
    wait_for(lambda: all(_owners(stack).values()), 60, "every block to own partitions")
    owner, owned = sorted(_owners(stack).items())[0]
    count = stack.settings.partitions
    prefix = f"share-{uuid.uuid4().hex[:8]}"
    keys = (f"{prefix}-{i}" for i in range(10_000))
    theirs = [k for k in keys if partition_for(k.encode(), count) in owned][:JOBS]
    handles = [client.submit("sleep", {"seconds": SECONDS}, "sharing", key=k) for k in theirs]
    done = [handle.result(TIMEOUT) for handle in handles]
    assert all((c.status, c.attempts) == (Status.SUCCEEDED, 1) for c in done)
    ran = Counter(c.block for c in done)
    assert set(ran) == set(_owners(stack)), f"block {owner} ran them alone: {ran}"
    found = completions_for(stack.settings.bootstrap_servers, theirs)
    assert {key: len(found.get(key, [])) for key in theirs} == dict.fromkeys(theirs, 1)
