"""The block keeper, without Ray: a block unwell past its grace is restarted once per
grace; a busy block is never touched, however long."""

from __future__ import annotations

from typing import Any

from computeinfra.cluster.keeper import BlockKeeper
from computeinfra.protocol import BlockState


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_unreachable_block_is_restarted_after_its_grace_and_a_busy_one_never() -> None:
    clock = _Clock()
    states = [BlockState.BUSY, BlockState.UNREACHABLE]
    restarted: list[int] = []

    def statuses() -> list[dict[str, Any]]:
        return [{"state": s, "error": "timed out"} for s in states]

    keeper = BlockKeeper(statuses, restarted.append, grace=60.0, clock=clock)
    assert keeper.check() == []  # unwell from now on
    clock.now = 59.0
    assert keeper.check() == []
    clock.now = 61.0
    assert keeper.check() == [1] and restarted == [1]
    clock.now = 175.0
    assert keeper.check() == []  # the next waits twice as long: 120 s
    clock.now = 182.0
    assert keeper.check() == [1] and keeper.restarts == {1: 2}
    states[1] = BlockState.DEAD  # its consume thread restarts itself: not the keeper's
    clock.now = 10_000.0
    assert keeper.check() == [] and keeper.check() == []
    assert 0 not in keeper.restarts  # busy all along, however long


def test_a_restart_that_fails_is_tried_again_later() -> None:
    clock = _Clock()
    calls: list[int] = []

    def restart(index: int) -> None:
        calls.append(index)
        if len(calls) == 1:
            raise RuntimeError("Ray is busy")

    keeper = BlockKeeper(lambda: [{"state": BlockState.UNREACHABLE}], restart, 5.0, clock)
    keeper.check()
    clock.now = 6.0
    assert keeper.check() == [] and calls == [0]
    clock.now = 17.0
    assert keeper.check() == [0] and calls == [0, 0]


def test_partitions_unowned_past_the_grace_make_a_block_rejoin_with_backoff() -> None:
    """A cooperative rebalance cut in half and stored by the group: no block will ever
    read those partitions until one takes a new seat. The same partitions must stay
    unowned all along (a rebalance between its rounds shows others)."""
    clock = _Clock()
    unowned = [("pendingJobs", 3)]
    reseats: list[float] = []
    keeper = BlockKeeper(
        lambda: [],
        lambda i: None,
        60.0,
        clock,
        unowned=lambda: list(unowned),
        reseat=lambda: reseats.append(clock.now),
    )
    assert not keeper.check_group()
    clock.now = 30.0
    unowned.append(("pendingJobs", 4))  # other partitions: counting starts again
    assert not keeper.check_group()
    clock.now = 61.0
    assert not keeper.check_group()
    clock.now = 91.0
    assert keeper.check_group() and reseats == [91.0]
    clock.now = 200.0
    assert not keeper.check_group()  # then twice the grace
    clock.now = 212.0
    assert keeper.check_group() and keeper.reseats == 2
    unowned.clear()
    clock.now = 5000.0
    assert not keeper.check_group() and reseats == [91.0, 212.0]
