"""What ``computeinfra doctor`` concludes, from plain data: each finding a user can meet."""

from __future__ import annotations

from computeinfra.kafka.diagnosis import (
    GroupView,
    Level,
    OpenTxn,
    group_findings,
    settings_findings,
    topic_findings,
    transaction_findings,
)

TOPICS = ("pendingJobs", "completedJobs", "jobStatus", "deadJobs")
PENDING = [("pendingJobs", p) for p in range(4)]


def _codes(findings: list) -> list[tuple[str, Level]]:
    return [(f.code, f.level) for f in findings]


def test_topics_present_or_missing() -> None:
    counts = {"pendingJobs": 4, "completedJobs": 4, "jobStatus": 4, "deadJobs": 1}
    assert _codes(topic_findings(counts, TOPICS, 4)) == [("topics-ok", Level.OK)]
    missing = topic_findings({"pendingJobs": 6}, TOPICS, 4)
    assert _codes(missing) == [("topic-missing", Level.PROBLEM)] * 3 + [
        ("partition-count", Level.NOTE)
    ]
    assert "completedJobs does not exist" in missing[0].message


def test_a_stable_group_that_leaves_partitions_unread_is_a_problem() -> None:
    """The state of issue #17's data directory: half a cooperative rebalance."""
    view = GroupView(
        "stable",
        {"ns-h-block-0-aaaa": PENDING[2:], "ns-h-block-1-aaaa": []},
        PENDING,
        {tp: 3 for tp in PENDING},
    )
    (finding,) = group_findings("g", view)
    assert (finding.code, finding.level) == ("unowned-partitions", Level.PROBLEM)
    assert "pendingJobs-0, pendingJobs-1" in finding.message and finding.data["waiting"] == 6


def test_no_blocks_with_jobs_waiting_warns_and_a_healthy_group_is_ok() -> None:
    lag = {tp: 2 for tp in PENDING}
    assert _codes(group_findings("g", GroupView("empty", {}, PENDING, lag))) == [
        ("no-blocks", Level.WARNING)
    ]
    assert _codes(group_findings("g", GroupView("empty", {}, PENDING, {}))) == [
        ("no-blocks", Level.NOTE)
    ]
    healthy = GroupView("stable", {"ns-h-block-0-a": PENDING}, PENDING, lag)
    (ok,) = group_findings("g", healthy)
    assert ok.level is Level.OK and "8 job(s)" in ok.message


def test_a_block_with_seats_from_two_runs_is_named() -> None:
    view = GroupView(
        "stable",
        {"ns-h-block-0-old1": PENDING[:2], "ns-h-block-0-new2": PENDING[2:]},
        PENDING,
        {},
    )
    (finding,) = group_findings("g", view)
    assert finding.code == "stale-seat" and finding.data["seats"] == [
        "ns-h-block-0-new2",
        "ns-h-block-0-old1",
    ]


def test_rebalancing_is_a_note_not_a_problem() -> None:
    view = GroupView("preparing_rebalancing", {"ns-h-block-0-a": []}, PENDING, {})
    assert _codes(group_findings("g", view)) == [("rebalancing", Level.NOTE)]


def test_transactions_open_too_long_or_hanging_are_fixable_problems() -> None:
    committing = OpenTxn("ns-h-block-0", 7, "Ongoing", 0.2, 15.0, (("completedJobs", 3),))
    stuck = OpenTxn("ns-h-block-1", 8, "Ongoing", 900.0, 15.0, (("completedJobs", 1),))
    hanging = {"topic": "jobStatus", "partition": 2, "producer_id": 9, "start_offset": 40,
               "minutes_open": 20}  # fmt: skip
    found = transaction_findings([committing, stuck], [hanging], stuck_after=60.0)
    assert _codes(found) == [
        ("open-transaction", Level.NOTE),
        ("stuck-transaction", Level.PROBLEM),
        ("hanging-transaction", Level.PROBLEM),
    ]
    assert [f.fixable for f in found] == [False, True, True]
    assert "completedJobs-1" in found[1].message and "offset 40" in found[2].message
    assert _codes(transaction_findings([], [], 60.0)) == [("transactions-ok", Level.OK)]


def test_topic_settings_that_lose_jobs_or_status_are_named() -> None:
    counts = {"pendingJobs": 12, "jobStatus": 6, "completedJobs": 12}
    configs = {
        "jobStatus": {"cleanup.policy": "delete"},
        "pendingJobs": {"retention.ms": str(3600 * 1000)},
        "completedJobs": {"retention.ms": "-1", "max.message.bytes": "8192"},
        "deadJobs": {"max.message.bytes": "1048588"},
    }
    found = settings_findings(configs, counts)
    assert [f.code for f in found] == [
        "status-not-compacted",
        "status-partitions",
        "short-retention",
        "small-max-message",
    ]
    assert "completedJobs takes records up to 8192 bytes" in found[3].message
    assert "pendingJobs keeps records 1 h" in found[2].message
    healthy = {"jobStatus": {"cleanup.policy": "compact"}, "pendingJobs": {"retention.ms": "-1"}}
    assert settings_findings(healthy, {"pendingJobs": 12, "jobStatus": 12}) == []
