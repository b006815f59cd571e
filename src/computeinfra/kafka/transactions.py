"""Transactions as the broker sees them (KIP-664): list, describe, find hanging, abort.

confluent-kafka has no admin call for these, so this runs Kafka's own
``TransactionsCommand`` (the ``kafka-transactions.sh`` tool, from the ``kafka-tools`` jar
our pom fetches) and reads its tab-separated tables. One JVM per call, about a second each:
callers ask few questions (``list`` once, ``describe`` only for open transactions).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from .jars import ensure_kafka_jars, require_tool, tail

__all__ = [
    "OpenTransaction",
    "TransactionSummary",
    "TransactionTool",
    "TransactionToolError",
]

TOOL_CLASS = "org.apache.kafka.tools.TransactionsCommand"
TOOL_TIMEOUT_SECONDS = 60.0
# A short-lived JVM: start fast, stay small.
_JVM_OPTIONS = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


class TransactionToolError(Exception):
    """The tool could not run, or the broker refused the request."""


@dataclass(frozen=True)
class TransactionSummary:
    """One row of ``list``: a transactional id the coordinator knows."""

    transactional_id: str
    producer_id: int
    state: str  # Kafka's own names: Ongoing, PrepareCommit, CompleteCommit, Empty…


@dataclass(frozen=True)
class OpenTransaction:
    """A transaction still open on one partition: it holds back that partition's last
    stable offset, so ``read_committed`` readers see nothing after it until it ends."""

    topic: str
    partition: int
    producer_id: int
    start_offset: int
    minutes_open: int


class TransactionTool:
    """Kafka's ``TransactionsCommand`` against one bootstrap address."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap

    def summaries(self) -> list[TransactionSummary]:
        return [
            TransactionSummary(
                row["TransactionalId"], int(row["ProducerId"]), row["TransactionState"]
            )
            for row in self._table("list")
        ]

    def describe(self, transactional_id: str) -> dict[str, str]:
        """State, timeout, how long the current transaction has been open, its partitions."""
        rows = self._table("describe", "--transactional-id", transactional_id)
        return rows[0] if rows else {}

    def producers(self, topic: str, partition: int) -> list[dict[str, str]]:
        """The producers that wrote to one partition lately, with the offset where each
        one's open transaction starts (``CurrentTransactionStartOffset``, -1: none)."""
        return self._table("describe-producers", "--topic", topic, "--partition", str(partition))

    def find_hanging(self, broker_id: int, max_timeout_minutes: int) -> list[OpenTransaction]:
        """Transactions open on this broker's partitions for longer than any transaction
        may last, which their coordinator does not know as ongoing: nothing will ever end
        them (the "hanging transactions" of KIP-664)."""
        rows = self._table(
            "find-hanging",
            "--broker-id",
            str(broker_id),
            "--max-transaction-timeout",
            str(max_timeout_minutes),
        )
        return [
            OpenTransaction(
                topic=row["Topic"],
                partition=int(row["Partition"]),
                producer_id=int(row["ProducerId"]),
                start_offset=int(row["StartOffset"]),
                minutes_open=int(row.get("Duration(min)", "0") or 0),
            )
            for row in rows
        ]

    def abort(self, topic: str, partition: int, start_offset: int) -> None:
        """Write an abort marker for the transaction that starts at ``start_offset``."""
        self._run(
            "abort",
            "--topic",
            topic,
            "--partition",
            str(partition),
            "--start-offset",
            str(start_offset),
        )

    def _table(self, *args: str) -> list[dict[str, str]]:
        lines = [line for line in self._run(*args).splitlines() if line.strip()]
        if not lines:
            return []
        header = [h.strip() for h in lines[0].split("\t")]
        rows = []
        for line in lines[1:]:
            cells = [c.strip() for c in line.split("\t")]
            rows.append(dict(zip(header, cells, strict=False)))
        return rows

    def _run(self, *args: str) -> str:
        try:
            java = require_tool("java")
            lib = ensure_kafka_jars()
        except Exception as exc:  # no Java or Maven here: say so, do not crash
            raise TransactionToolError(str(exc)) from exc
        cmd = [
            java,
            *_JVM_OPTIONS,
            "-cp",
            f"{lib}/*",
            TOOL_CLASS,
            "--bootstrap-server",
            self._bootstrap,
            *args,
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise TransactionToolError(
                f"kafka-transactions {args[0]} took over {TOOL_TIMEOUT_SECONDS:g} s"
            ) from exc
        if proc.returncode != 0:
            raise TransactionToolError(
                f"kafka-transactions {args[0]} failed: {tail(proc.stderr or proc.stdout, 5)}"
            )
        return proc.stdout
