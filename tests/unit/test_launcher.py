"""When a cluster's first blocks count as ready: the group has shared the partitions."""

from __future__ import annotations

import pytest

from computeinfra.cluster.launcher import group_settled


def blocks(*partition_counts: int) -> list[dict[str, object]]:
    return [{"partitions": list(range(n))} for n in partition_counts]


@pytest.mark.parametrize(
    ("counts", "settled"),
    [
        ((12, 0), False),  # the first block to join holds everything for a while
        ((6, 0), False),  # cooperative rebalance: revoked from one, not yet given to the other
        ((0, 0), False),  # nobody has joined yet
        ((6, 6), True),
        ((5, 4, 3), False),
        ((4, 4, 4), True),
        ((1, 1, 0), True),  # more blocks than partitions: some must stay without
        ((2, 1, 1), True),
    ],
)
def test_group_settled(counts: tuple[int, ...], settled: bool) -> None:
    assert group_settled(blocks(*counts)) is settled
