"""Which held partitions have stalled, read from librdkafka's statistics (``stalled.py``)."""

from __future__ import annotations

import json

from computeinfra.block.stalled import StalledFetches

TOPIC = "pendingJobs"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(states: dict[int, str], join_state: str = "steady", state: str = "up") -> str:
    partitions = {str(p): {"partition": p, "fetch_state": s} for p, s in states.items()}
    partitions["-1"] = {"partition": -1, "fetch_state": "none"}
    group = {"state": state, "join_state": join_state}
    return json.dumps({"cgrp": group, "topics": {TOPIC: {"partitions": partitions}}})


def watch() -> tuple[StalledFetches, Clock]:
    clock = Clock()
    return StalledFetches(after=10.0, clock=clock), clock


def test_a_held_partition_not_started_for_the_whole_delay_is_due_once_per_delay() -> None:
    stalled, clock = watch()
    held = {(TOPIC, 0), (TOPIC, 1)}
    stalled.read(stats({0: "none", 1: "active"}))
    clock.now += 9.9
    stalled.read(stats({0: "none", 1: "active"}))
    assert stalled.due(held) == []
    clock.now += 0.2
    assert stalled.due(held) == [(TOPIC, 0)]
    assert stalled.due(held) == []  # not again before another delay
    clock.now += 10.0
    stalled.read(stats({0: "stopped", 1: "active"}))
    assert stalled.due(held) == [(TOPIC, 0)]


def test_a_partition_that_starts_is_forgotten() -> None:
    stalled, clock = watch()
    stalled.read(stats({0: "none"}))
    clock.now += 5.0
    stalled.read(stats({0: "active"}))
    clock.now += 5.0
    stalled.read(stats({0: "none"}))  # stopped again: counted from now
    clock.now += 9.0
    assert stalled.due({(TOPIC, 0)}) == []
    clock.now += 1.0
    assert stalled.due({(TOPIC, 0)}) == [(TOPIC, 0)]


def test_partitions_not_held_and_the_internal_partition_are_never_due() -> None:
    stalled, clock = watch()
    stalled.read(stats({0: "none", 1: "none"}))
    clock.now += 60.0
    assert stalled.due({(TOPIC, 1)}) == [(TOPIC, 1)]
    assert stalled.due(set()) == []


def test_nothing_is_due_while_the_group_rebalances_or_its_coordinator_is_away() -> None:
    stalled, clock = watch()
    assert stalled.due({(TOPIC, 0)}) == []  # before any statistics
    stalled.read(stats({0: "none"}, join_state="wait-assign-call"))
    clock.now += 60.0
    assert stalled.due({(TOPIC, 0)}) == []
    stalled.read(stats({0: "none"}, state="query-coord"))
    assert stalled.due({(TOPIC, 0)}) == []
    stalled.read(stats({0: "none"}))
    assert stalled.due({(TOPIC, 0)}) == [(TOPIC, 0)]  # the wait counts from the first sight


def test_unreadable_statistics_change_nothing() -> None:
    stalled, clock = watch()
    stalled.read(stats({0: "none"}))
    clock.now += 60.0
    stalled.read("not json")
    stalled.read("[]")
    assert stalled.due({(TOPIC, 0)}) == [(TOPIC, 0)]
    stalled.read(json.dumps({"topics": {TOPIC: {"partitions": {"0": []}}}}))  # no raise
