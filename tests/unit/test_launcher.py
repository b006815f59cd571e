"""When a cluster's first blocks count as ready: the group has shared the partitions."""

from __future__ import annotations

import pytest

from computeinfra.cluster.launcher import group_settled


def blocks(*partition_counts: int) -> list[dict[str, object]]:
    """Blocks owning that many partitions each, numbered on from one block to the next."""
    rows, first = [], 0
    for count in partition_counts:
        rows.append({"partitions": list(range(first, first + count))})
        first += count
    return rows


@pytest.mark.parametrize(
    ("counts", "settled"),
    [
        ((12, 0), False),  # the first block to join holds everything for a while
        ((6, 0), False),  # cooperative rebalance: revoked from one, not yet given to the other
        ((0, 0), False),  # nobody has joined yet
        ((6, 6), True),
        ((5, 4, 3), False),
        ((4, 4, 4), True),
        ((2, 1, 1), False),  # balanced, but 8 of 12 partitions are owned by nobody
    ],
)
def test_group_settled(counts: tuple[int, ...], settled: bool) -> None:
    assert group_settled(blocks(*counts), 12) is settled


def test_more_blocks_than_partitions_some_stay_without() -> None:
    assert group_settled(blocks(1, 1, 0), 2)
    assert not group_settled(blocks(1, 0, 0), 2)


def test_workers_per_block_is_a_core_each_unless_set() -> None:
    from dataclasses import replace

    from computeinfra.cluster.launcher import worker_names, workers_per_block
    from computeinfra.config import Settings

    settings = Settings.from_env({})
    assert workers_per_block(settings, blocks=2, cpus=2) == 1
    assert workers_per_block(settings, blocks=2, cpus=8) == 4
    assert workers_per_block(settings, blocks=4, cpus=2) == 1  # never none
    assert workers_per_block(replace(settings, concurrency=3), blocks=2, cpus=2) == 3
    assert worker_names("1", 3) == ["worker-1", "worker-1.1", "worker-1.2"]
