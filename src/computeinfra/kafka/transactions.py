"""Transactions as the broker sees them (KIP-664): list, describe, find hanging, abort.

confluent-kafka has no admin call for these, so this runs Kafka's own
``TransactionsCommand`` (the ``kafka-transactions.sh`` tool, from the ``kafka-tools`` jar
our pom fetches) and reads its tab-separated tables. One JVM per call, about a second each:
callers ask few questions (``list`` once, ``describe`` only for open transactions).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .jars import installed_kafka_jars, require_tool, tail

__all__ = [
    "OpenTransaction",
    "TransactionSummary",
    "TransactionTool",
    "TransactionToolError",
]

_T = TypeVar("_T")
TOOL_CLASS = "org.apache.kafka.tools.TransactionsCommand"
TOOL_TIMEOUT_SECONDS = 60.0
# A short-lived JVM: start fast, stay small.
# Log4j's default configuration would print its errors on stdout, among the table's rows.
_JVM_OPTIONS = [
    "-Xmx256m",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Dorg.apache.logging.log4j.level=OFF",
]
_COLUMN = re.compile(r"^[A-Za-z()]+$")


class TransactionToolError(Exception):
    """The tool could not run, or the broker refused the request."""


def _parsed(read: Callable[[], list[_T]]) -> list[_T]:
    """``read()``, with a table we cannot read (another Kafka's columns) as the tool's
    error, not a traceback."""
    try:
        return read()
    except (KeyError, ValueError) as exc:
        raise TransactionToolError(f"unexpected output of kafka-transactions: {exc!r}") from exc


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
        return _parsed(
            lambda: [
                TransactionSummary(
                    row["TransactionalId"], int(row["ProducerId"]), row["TransactionState"]
                )
                for row in self._table("list")
            ]
        )

    def describe(self, transactional_id: str) -> dict[str, str]:
        """State, timeout, how long the current transaction has been open, its partitions."""
        rows = self._table("describe", "--transactional-id", transactional_id)
        return rows[0] if rows else {}

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
        return _parsed(
            lambda: [
                OpenTransaction(
                    topic=row["Topic"],
                    partition=int(row["Partition"]),
                    producer_id=int(row["ProducerId"]),
                    start_offset=int(row["StartOffset"]),
                    minutes_open=int(row.get("Duration(min)", "0") or 0),
                )
                for row in rows
            ]
        )

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
        """The tool's table: the header is the first line of column names (a log line
        the JVM may print first is skipped), rows are the lines with as many cells."""
        lines = [[c.strip() for c in line.split("\t")] for line in self._run(*args).splitlines()]
        for index, cells in enumerate(lines):
            if len(cells) > 1 and all(_COLUMN.match(c) for c in cells if c):
                header = [c for c in cells if c]
                rows = [row for row in lines[index + 1 :] if len(row) >= len(header)]
                return [dict(zip(header, row, strict=False)) for row in rows]
        return []

    def _run(self, *args: str) -> str:
        try:
            java = require_tool("java")
            lib = installed_kafka_jars()
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
