"""What ``computeinfra doctor`` concludes from what the broker said, in plain words.

Pure functions over plain data, so each finding is unit-tested without a broker; the
reading (and ``--fix``) is in ``doctor.py``. docs/operations.md says what each finding
means and what to do; every finding's ``code`` is a heading there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Finding",
    "GroupView",
    "Level",
    "OpenTxn",
    "group_findings",
    "settings_findings",
    "topic_findings",
    "transaction_findings",
]

TopicPartition = tuple[str, int]


class Level(StrEnum):
    OK = "ok"
    NOTE = "note"  # worth knowing; nothing to do
    WARNING = "warning"  # jobs may wait; look into it
    PROBLEM = "problem"  # jobs cannot progress until it is fixed


@dataclass(frozen=True)
class Finding:
    area: str  # broker, topics, group, transactions
    code: str  # stable, kebab-case: a heading of docs/operations.md
    level: Level
    message: str
    fixable: bool = False  # ``doctor --fix`` can act on it
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GroupView:
    """The consumer group of the working blocks, as described by the broker."""

    state: str  # stable, empty, preparing_rebalancing, completing_rebalancing, dead
    members: Mapping[str, Sequence[TopicPartition]]  # instance (or member) id -> assignment
    partitions: Sequence[TopicPartition]  # every partition the blocks should read
    lag: Mapping[TopicPartition, int]  # records not yet committed, per partition


@dataclass(frozen=True)
class OpenTxn:
    """A transaction of one of our blocks that the coordinator has open."""

    transactional_id: str
    producer_id: int
    state: str
    open_seconds: float
    timeout_seconds: float
    partitions: tuple[TopicPartition, ...]


def topic_findings(
    found: Mapping[str, int], wanted: Sequence[str], expected_partitions: int
) -> list[Finding]:
    """``found``: topic -> partition count, for the job topics that exist."""
    findings = [
        Finding(
            "topics",
            "topic-missing",
            Level.PROBLEM,
            f"topic {name} does not exist: `computeinfra up` creates it",
            fixable=False,
            data={"topic": name},
        )
        for name in wanted
        if name not in found
    ]
    pending = found.get(wanted[0]) if wanted else None
    if pending is not None and pending != expected_partitions:
        findings.append(
            Finding(
                "topics",
                "partition-count",
                Level.NOTE,
                f"{wanted[0]} has {pending} partitions where COMPUTEINFRA_PARTITIONS says "
                f"{expected_partitions}; the topic's own count is used",
                data={"topic": wanted[0], "partitions": pending},
            )
        )
    if not findings:
        counts = ", ".join(f"{name} ({found[name]})" for name in wanted)
        findings.append(Finding("topics", "topics-ok", Level.OK, f"topics present: {counts}"))
    return findings


DAY_MS = 24 * 3600 * 1000


def settings_findings(
    configs: Mapping[str, Mapping[str, str]], counts: Mapping[str, int]
) -> list[Finding]:
    """What the job topics' settings mean for jobs. ``configs``: topic -> its config;
    ``counts``: topic -> partitions. Names are the protocol's (``pendingJobs``…)."""
    findings = []
    status = configs.get("jobStatus", {})
    if status and "compact" not in status.get("cleanup.policy", ""):
        findings.append(Finding("topics", "status-not-compacted", Level.WARNING,
                                "jobStatus is not compacted: it keeps every status record, "
                                "and grows with history (set cleanup.policy=compact)"))  # fmt: skip
    status_count, pending_count = counts.get("jobStatus"), counts.get("pendingJobs")
    if status_count and pending_count and status_count != pending_count:
        findings.append(Finding("topics", "status-partitions", Level.WARNING,
                                f"jobStatus has {status_count} partitions, pendingJobs "
                                f"{pending_count}: `status` looks for a job's state "
                                "on the partition of the same number"))  # fmt: skip
    for topic, what in (("pendingJobs", "a job waiting"), ("completedJobs", "a completion")):
        retention = int(configs.get(topic, {}).get("retention.ms", "-1") or -1)
        if 0 <= retention < 7 * DAY_MS:
            findings.append(Finding("topics", "short-retention", Level.WARNING,
                                    f"{topic} keeps records {retention / 3_600_000:g} h: "
                                    f"{what} longer than that is deleted",
                                    data={"topic": topic, "retention_ms": retention}))  # fmt: skip
    return findings + _size_findings(configs)


# A block keeps each record it publishes under 900,000 bytes (``block/answers.py``); a topic
# that takes less refuses some answers, which then end ``failed`` with ``AnswerRefused``.
ANSWER_BYTES = 1_000_000


def _size_findings(configs: Mapping[str, Mapping[str, str]]) -> list[Finding]:
    findings = []
    for topic in ("completedJobs", "deadJobs", "jobStatus"):
        limit = int(configs.get(topic, {}).get("max.message.bytes", "0") or 0)
        if 0 < limit < ANSWER_BYTES:
            findings.append(Finding("topics", "small-max-message", Level.WARNING,
                                    f"{topic} takes records up to {limit} bytes: an answer "
                                    "larger than that is refused, and its job ends failed "
                                    "with AnswerRefused (set max.message.bytes to 1048588)",
                                    data={"topic": topic, "max_message_bytes": limit}))  # fmt: skip
    return findings


def group_findings(group: str, view: GroupView) -> list[Finding]:
    waiting = sum(view.lag.values())
    data = {
        "group": group,
        "state": view.state,
        "members": len(view.members),
        "lag": waiting,
        "assignment": {m: [f"{t}-{p}" for t, p in tps] for m, tps in view.members.items()},
    }
    if not view.members:
        level = Level.WARNING if waiting else Level.NOTE
        message = f"no working block is in group {group}; {waiting} job(s) wait"
        return [Finding("group", "no-blocks", level, message, data=data)]
    findings = [*_ownership(group, view, data), *_double_seats(view, data)]
    if not findings:
        message = (f"{len(view.members)} block(s) read all {len(view.partitions)} partitions; "
                   f"{waiting} job(s) not yet committed")  # fmt: skip
        findings.append(Finding("group", "group-ok", Level.OK, message, data=data))
    return findings


def _ownership(group: str, view: GroupView, data: dict[str, Any]) -> list[Finding]:
    """Partitions no member of a stable group reads, or a rebalance under way."""
    if view.state != "stable":
        message = (f"group {group} is {view.state}: blocks are joining or leaving; ask "
                   "again in a few seconds")  # fmt: skip
        return [Finding("group", "rebalancing", Level.NOTE, message, data=data)]
    owned = {tp for assignment in view.members.values() for tp in assignment}
    unowned = sorted(tp for tp in view.partitions if tp not in owned)
    if not unowned:
        return []
    stuck = sum(view.lag.get(tp, 0) for tp in unowned)
    message = (f"no block reads {_partitions(unowned)} ({stuck} job(s) wait there) although "
               "the group is stable: a rebalance that never finished (`computeinfra up` "
               "makes a block rejoin after a minute; a restart of `up` does too)")  # fmt: skip
    data = {**data, "partitions": [list(tp) for tp in unowned], "waiting": stuck}
    return [Finding("group", "unowned-partitions", Level.PROBLEM, message, data=data)]


def _double_seats(view: GroupView, data: dict[str, Any]) -> list[Finding]:
    """A block id with seats from two runs: the older one has not left yet (its static
    membership lasts until the session times out) and holds partitions meanwhile."""
    by_block: dict[str, list[str]] = {}
    for seat in view.members:
        block, _, _run = seat.rpartition("-")
        if "-block-" in block:
            by_block.setdefault(block, []).append(seat)
    doubled = {block: seats for block, seats in by_block.items() if len(seats) > 1}
    return [
        Finding(
            "group",
            "stale-seat",
            Level.WARNING,
            f"{block} holds {len(seats)} seats ({', '.join(sorted(seats))}): one is "
            "from an earlier run that never left; it expires with its session",
            data={**data, "seats": sorted(seats)},
        )
        for block, seats in sorted(doubled.items())
    ]


def transaction_findings(
    ours: Sequence[OpenTxn], hanging: Sequence[Mapping[str, Any]], stuck_after: float
) -> list[Finding]:
    findings = []
    for txn in ours:
        where = _partitions(txn.partitions)
        if txn.open_seconds > stuck_after:
            findings.append(
                Finding(
                    "transactions",
                    "stuck-transaction",
                    Level.PROBLEM,
                    f"{txn.transactional_id} has had a transaction open on {where} for "
                    f"{txn.open_seconds:.0f} s (its timeout is {txn.timeout_seconds:.0f} s): "
                    "completions after it stay invisible. `doctor --fix` aborts it",
                    fixable=True,
                    data=asdict(txn),
                )
            )
        else:
            findings.append(
                Finding(
                    "transactions",
                    "open-transaction",
                    Level.NOTE,
                    f"{txn.transactional_id} is committing on {where}",
                    data=asdict(txn),
                )
            )
    for row in hanging:
        findings.append(
            Finding(
                "transactions",
                "hanging-transaction",
                Level.PROBLEM,
                f"a transaction of producer {row['producer_id']} has hung on "
                f"{row['topic']}-{row['partition']} since offset {row['start_offset']} for "
                f"{row['minutes_open']} min; no coordinator will end it. `doctor --fix` aborts it",
                fixable=True,
                data=dict(row),
            )
        )
    if not findings:
        findings.append(
            Finding(
                "transactions", "transactions-ok", Level.OK, "no transaction is stuck or hanging"
            )
        )
    return findings


def _partitions(tps: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{topic}-{partition}" for topic, partition in tps) or "no partition"
