"""A member's group metadata (``GroupMember.group_metadata``): kept between commits, taken
again at each rebalance callback, after a fenced commit, and with a new consumer. The
consumer is a stand-in: what a real broker does with it is
``tests/integration/test_membership_pause.py``'s."""

from __future__ import annotations

from typing import Any

import pytest

from computeinfra.block import membership
from computeinfra.block.membership import ConsumerDead, GroupMember
from computeinfra.config import Settings


class _Consumer:
    """Counts the group metadata librdkafka is asked for."""

    made = 0

    def __init__(self) -> None:
        _Consumer.made += 1
        self.number, self.asked = _Consumer.made, 0
        self.on_assign: Any = None
        self.on_revoke: Any = None

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consumer_group_metadata(self) -> tuple[int, int]:
        self.asked += 1
        return (self.number, self.asked)

    def close(self) -> None:
        pass


@pytest.fixture
def member(monkeypatch: pytest.MonkeyPatch) -> GroupMember:
    monkeypatch.setattr(membership, "make_supervisor_consumer", lambda *_a, **_k: _Consumer())
    return GroupMember(Settings(), "block-0", ["pendingJobs"])


def test_the_metadata_is_kept_between_commits(member: GroupMember) -> None:
    first = member.group_metadata()
    assert member.group_metadata() is first and member.group_metadata() is first
    assert member.consumer.asked == 1  # type: ignore[attr-defined]


def test_each_rebalance_callback_has_it_taken_again(member: GroupMember) -> None:
    consumer: Any = member.consumer
    before = member.group_metadata()
    consumer.on_assign(consumer, [])  # a rebalance that changed nothing here still ends so
    assigned = member.group_metadata()
    assert assigned != before
    consumer.on_revoke(consumer, [])
    assert member.group_metadata() != assigned
    assert consumer.asked == 3


def test_a_fenced_commit_or_a_new_consumer_has_it_taken_again(member: GroupMember) -> None:
    before = member.group_metadata()
    member.fenced()
    fenced = member.group_metadata()
    assert fenced != before
    member.rejoin(ConsumerDead("fatal"))
    number, _ = member.group_metadata()
    assert number != fenced[0]  # the new consumer's
