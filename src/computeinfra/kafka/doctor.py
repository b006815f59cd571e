"""``computeinfra doctor``: read the broker, the job topics, the blocks' consumer group and
their transactions, and say what is wrong in plain words (``diagnosis.py``); ``fix``
aborts the transactions that nothing else will end."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka import admin as kafka_admin
from confluent_kafka.admin import AdminClient

from computeinfra.config import Settings
from computeinfra.errors import KafkaError
from computeinfra.protocol import (
    CANCEL_TOPIC,
    COMPLETED_TOPIC,
    DEAD_TOPIC,
    JOB_STATUS_TOPIC,
    LANE_PREFIX,
    PENDING_TOPIC,
)

from .admin import partition_lag
from .clients import METADATA_TIMEOUT_SECONDS, common_config, make_producer
from .diagnosis import (
    Finding,
    GroupView,
    Level,
    OpenTxn,
    group_findings,
    settings_findings,
    topic_findings,
    transaction_findings,
)
from .transactions import TransactionTool, TransactionToolError

__all__ = ["Doctor", "Report"]

_log = logging.getLogger("computeinfra.kafka")
JOB_TOPICS = (PENDING_TOPIC, COMPLETED_TOPIC, JOB_STATUS_TOPIC, DEAD_TOPIC, CANCEL_TOPIC)
# Only an ongoing transaction can be stuck: one preparing its commit or abort is ending.
OPEN_STATES = {"Ongoing"}
# A block's transaction times out after 15 s and its coordinator then aborts it; open far
# longer than that, nothing is going to end it.
STUCK_AFTER_SECONDS = 60.0
# find-hanging's bound: the broker's transaction.max.timeout.ms (15 min by default).
MAX_TRANSACTION_MINUTES = 15


@dataclass
class Report:
    findings: list[Finding]
    fixed: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(f.level is Level.PROBLEM for f in self.findings)

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "findings": [f.as_json() for f in self.findings],
            "fixed": self.fixed,
        }


class Doctor:
    def __init__(self, settings: Settings, stuck_after: float = STUCK_AFTER_SECONDS) -> None:
        self._settings = settings
        self._bootstrap = settings.bootstrap_servers
        self._admin = AdminClient(common_config(self._bootstrap, "computeinfra-doctor"))
        self._tool = TransactionTool(self._bootstrap)
        self._stuck_after = stuck_after

    def examine(self) -> Report:
        try:
            brokers = self._brokers()
        except KafkaException as exc:
            message = f"no broker answers at {self._bootstrap}: {_reason(exc)}"
            return Report([Finding("broker", "broker-unreachable", Level.PROBLEM, message)])
        findings = [
            Finding(
                "broker",
                "broker-ok",
                Level.OK,
                f"Kafka at {self._bootstrap} answers: {len(brokers)} broker(s)",
                data={"brokers": brokers},
            )
        ]
        try:
            partitions = self._partitions()
        except KafkaException as exc:
            message = f"cannot list the topics: {_reason(exc)}"
            return Report(
                [*findings, Finding("topics", "topics-unreadable", Level.PROBLEM, message)]
            )
        counts = {t: len(ps) for t, ps in partitions.items() if t in JOB_TOPICS}
        findings += topic_findings(counts, JOB_TOPICS, self._settings.partitions)
        findings += self._settings_of(counts)
        findings += self._group(partitions)
        findings += self._transactions(brokers)
        return Report(findings)

    def fix(self, report: Report) -> Report:
        """End what ``examine`` found stuck or hanging; say what was done."""
        fixed = []
        for finding in (f for f in report.findings if f.fixable):
            try:
                fixed.append(self._fix_one(finding))
            except (TransactionToolError, KafkaException) as exc:
                fixed.append(f"could not fix {finding.code}: {exc}")
        return Report(report.findings, fixed)

    def _fix_one(self, finding: Finding) -> str:
        data = finding.data
        if finding.code == "stuck-transaction":
            # Fenced, not aborted partition by partition: a producer that starts with the
            # same transactional.id makes the coordinator abort the open transaction on
            # every partition and the offsets with it, atomically. Abort markers written
            # by hand could abort the answers of a transaction whose offsets then commit.
            fence(self._bootstrap, data["transactional_id"])
            return f"fenced {data['transactional_id']}: its open transaction was aborted"
        topic, partition, start = data["topic"], int(data["partition"]), int(data["start_offset"])
        self._tool.abort(topic, partition, start)
        return f"aborted the transaction on {topic}-{partition} that began at offset {start}"

    def _settings_of(self, counts: dict[str, int]) -> list[Finding]:
        if not counts:
            return []
        resource = kafka_admin.ConfigResource  # type: ignore[attr-defined]  # not re-exported
        resources = [resource(resource.Type.TOPIC, name) for name in counts]
        try:
            futures = self._admin.describe_configs(
                resources, request_timeout=METADATA_TIMEOUT_SECONDS
            )
            configs = {
                found.name: {k: str(v.value) for k, v in future.result().items()}
                for found, future in futures.items()
            }
        except KafkaException as exc:
            message = f"cannot read the topics' settings: {_reason(exc)}"
            return [Finding("topics", "settings-unreadable", Level.WARNING, message)]
        return settings_findings(configs, counts)

    def _brokers(self) -> list[int]:
        cluster = self._admin.describe_cluster(request_timeout=METADATA_TIMEOUT_SECONDS)
        return sorted(node.id for node in cluster.result(METADATA_TIMEOUT_SECONDS).nodes)

    def _partitions(self) -> dict[str, list[int]]:
        metadata = self._admin.list_topics(timeout=METADATA_TIMEOUT_SECONDS)
        return {
            name: sorted(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None and (name in JOB_TOPICS or name.startswith(LANE_PREFIX))
        }

    def unowned(self) -> list[tuple[str, int]]:
        """Partitions the blocks should read that no member of a stable group owns (the
        keeper's question; raises ``KafkaException`` when the broker cannot tell)."""
        view = self.group_view(self._partitions(), with_lag=False)
        if view.state != "stable" or not view.members:
            return []
        owned = {tp for assignment in view.members.values() for tp in assignment}
        return [tp for tp in view.partitions if tp not in owned]

    def group_view(self, partitions: dict[str, list[int]], with_lag: bool = True) -> GroupView:
        group = self._settings.group
        read = sorted(
            (topic, p)
            for topic, ps in partitions.items()
            if topic == PENDING_TOPIC or topic.startswith(LANE_PREFIX)
            for p in ps
        )
        described = self._admin.describe_consumer_groups([group])[group].result(
            METADATA_TIMEOUT_SECONDS
        )
        members = {
            m.group_instance_id or m.member_id: [
                (tp.topic, tp.partition) for tp in m.assignment.topic_partitions
            ]
            for m in described.members
        }
        # A lane topic is read only by blocks on nodes with its task's resources: with
        # none of them in the group, nobody should read it.
        lanes = {topic for assignment in members.values() for topic, _p in assignment}
        read = [tp for tp in read if tp[0] == PENDING_TOPIC or tp[0] in lanes]
        lag = partition_lag(self._bootstrap, group, read) if with_lag else {}
        return GroupView(described.state.name.lower(), members, read, lag)

    def _group(self, partitions: dict[str, list[int]]) -> list[Finding]:
        group = self._settings.group
        try:
            view = self.group_view(partitions)
        except (KafkaException, KafkaError) as exc:  # KafkaError: where a partition ends
            message = f"cannot describe group {group}: {_reason(exc)}"
            return [Finding("group", "group-unreadable", Level.WARNING, message)]
        return group_findings(group, view)

    def _transactions(self, brokers: list[int]) -> list[Finding]:
        try:
            ours = [
                self._open(t.transactional_id, t.producer_id)
                for t in self._tool.summaries()
                if t.transactional_id.startswith(f"{self._settings.namespace}-")
                and t.state in OPEN_STATES
            ]
            hanging = [
                vars(h)
                for b in brokers
                for h in self._tool.find_hanging(b, MAX_TRANSACTION_MINUTES)
            ]
        except TransactionToolError as exc:
            return [
                Finding(
                    "transactions",
                    "transactions-unreadable",
                    Level.WARNING,
                    f"cannot read transactions: {exc}",
                )
            ]
        return transaction_findings([t for t in ours if t], hanging, self._stuck_after)

    def _open(self, transactional_id: str, producer_id: int) -> OpenTxn | None:
        row = self._tool.describe(transactional_id)
        if row.get("TransactionState") not in OPEN_STATES:
            return None  # it ended since ``list``
        started = _number(row.get("CurrentTransactionStartTimeMs")) / 1000
        tps = []
        for name in (row.get("TopicPartitions") or "").split(","):
            topic, _, partition = name.strip().rpartition("-")
            if topic and partition.isdigit():
                tps.append((topic, int(partition)))
        return OpenTxn(
            transactional_id=transactional_id,
            producer_id=producer_id,
            state=row["TransactionState"],
            open_seconds=max(time.time() - started, 0.0) if started > 0 else 0.0,
            timeout_seconds=_number(row.get("TransactionTimeoutMs")) / 1000,
            partitions=tuple(tps),
        )


def _reason(exc: KafkaException | KafkaError) -> str:
    error: Any = exc.args[0] if exc.args else None
    return str(error.str()) if error is not None and hasattr(error, "str") else str(exc)


def _number(text: str | None) -> float:
    """A figure of the tool's table; "None" and "-1" (nothing there) read as 0."""
    try:
        return max(float(text or 0), 0.0)
    except ValueError:
        return 0.0


def fence(bootstrap: str, transactional_id: str) -> None:
    """Start, then close, a producer with ``transactional_id``: the coordinator aborts the
    transaction its previous holder left open. A block still alive under that id finds
    itself fenced, and starts a new producer; its answers are read and made again."""
    producer = make_producer(
        bootstrap, "computeinfra-doctor", **{"transactional.id": transactional_id}
    )
    producer.init_transactions(METADATA_TIMEOUT_SECONDS * 3)
    producer.flush(METADATA_TIMEOUT_SECONDS)
