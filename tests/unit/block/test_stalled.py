"""Which held partitions have stalled, read from librdkafka's statistics (``stalled.py``)."""

from __future__ import annotations

import json

from computeinfra.block.stalled import StalledFetches

TOPIC = "pendingJobs"
P0, P1 = (TOPIC, 0), (TOPIC, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(states: dict[int, str], group_state: str = "up") -> str:
    partitions = {str(p): {"partition": p, "fetch_state": s} for p, s in states.items()}
    partitions["-1"] = {"partition": -1, "fetch_state": "none"}
    group = {"state": group_state, "join_state": "steady"}
    return json.dumps({"cgrp": group, "topics": {TOPIC: {"partitions": partitions}}})


def watch() -> tuple[StalledFetches, Clock]:
    clock = Clock()
    return StalledFetches(after=30.0, clock=clock), clock


def test_a_held_partition_not_fetching_for_the_whole_delay_has_stalled() -> None:
    stalled, clock = watch()
    held = {P0, P1}
    stalled.read(stats({0: "none", 1: "active"}))
    assert stalled.stalled(held) == []
    clock.now += 29.9
    stalled.read(stats({0: "stopped", 1: "active"}))
    assert stalled.stalled(held) == []
    clock.now += 0.2
    assert stalled.stalled(held) == [P0]
    assert stalled.stalled(held) == [P0]  # until the consumer is replaced


def test_a_partition_that_starts_fetching_waits_afresh_if_it_stops() -> None:
    stalled, clock = watch()
    stalled.read(stats({0: "none"}))
    assert stalled.stalled({P0}) == []
    clock.now += 20.0
    stalled.read(stats({0: "active"}))
    assert stalled.stalled({P0}) == []
    clock.now += 20.0
    stalled.read(stats({0: "none"}))
    assert stalled.stalled({P0}) == []  # counted from here
    clock.now += 29.0
    assert stalled.stalled({P0}) == []
    clock.now += 1.0
    assert stalled.stalled({P0}) == [P0]


def test_only_held_partitions_count_and_from_when_they_are_held() -> None:
    stalled, clock = watch()
    stalled.read(stats({0: "none", 1: "stopped"}))
    assert stalled.stalled({P0}) == []
    clock.now += 60.0  # P1 stopped all along, but not held
    stalled.assigned([P1])
    assert stalled.stalled({P0, P1}) == [P0]
    clock.now += 30.0
    assert stalled.stalled({P0, P1}) == [P0, P1]
    assert stalled.stalled(set()) == []


def test_an_assignment_starts_the_wait_again() -> None:
    stalled, clock = watch()
    stalled.read(stats({0: "none"}))
    assert stalled.stalled({P0}) == []
    clock.now += 25.0
    stalled.assigned([P0])  # revoked and given back meanwhile
    assert stalled.stalled({P0}) == []
    clock.now += 25.0
    assert stalled.stalled({P0}) == []


def test_nothing_stalls_while_the_coordinator_is_away_or_before_any_statistics() -> None:
    stalled, clock = watch()
    assert stalled.stalled({P0}) == []
    stalled.read(stats({0: "none"}, group_state="query-coord"))
    assert stalled.stalled({P0}) == []
    clock.now += 60.0
    assert stalled.stalled({P0}) == []
    stalled.read(stats({0: "none"}))
    assert stalled.stalled({P0}) == []  # the wait counts from the coordinator's return
    clock.now += 30.0
    assert stalled.stalled({P0}) == [P0]


def test_unreadable_statistics_change_nothing_and_never_raise() -> None:
    stalled, clock = watch()
    stalled.read(stats({0: "none"}))
    assert stalled.stalled({P0}) == []
    clock.now += 60.0
    stalled.read("not json")
    stalled.read("[]")
    assert stalled.stalled({P0}) == [P0]
    stalled.read(json.dumps({"topics": {TOPIC: {"partitions": {"0": []}}}}))  # no raise
    stalled.read(json.dumps({"topics": []}))
