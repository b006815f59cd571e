"""``/metrics``: the analyzer's figures in the Prometheus text format, built at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from computeinfra.errors import ClusterError
from computeinfra.protocol import TERMINAL_STATES, BlockState
from computeinfra.web.figures import ClusterFigures

__all__ = ["CONTENT_TYPE", "ClusterCollector", "exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "computeinfra"


def _histogram(name: str, doc: str, tasks: dict[str, Any], field: str) -> HistogramMetricFamily:
    family = HistogramMetricFamily(f"{PREFIX}_{name}_seconds", doc, labels=["task"])
    for task, row in tasks.items():
        histogram = row.get(field) or {}
        buckets = [(repr(float(bound)), count) for bound, count in histogram.get("buckets", [])]
        buckets.append(("+Inf", histogram.get("count", 0)))
        family.add_metric([task], buckets=buckets, sum_value=histogram.get("sum", 0.0))
    return family


def _job_metrics(analyzer: dict[str, Any]) -> Iterator[Metric]:
    tasks: dict[str, Any] = analyzer.get("tasks", {})
    submitted = CounterMetricFamily(
        f"{PREFIX}_jobs_submitted",
        "Requests seen on pendingJobs, or answered if read first.",
        labels=["task"],
    )
    completed = CounterMetricFamily(
        f"{PREFIX}_jobs_completed", "Completions committed, by status.", labels=["task", "status"]
    )
    attempts = CounterMetricFamily(
        f"{PREFIX}_job_attempts", "Attempts sent to workers.", labels=["task"]
    )
    in_flight = GaugeMetricFamily(
        f"{PREFIX}_jobs_in_flight", "Submitted, not answered yet.", labels=["task"]
    )
    for task, row in tasks.items():
        submitted.add_metric([task], row.get("submitted", 0))
        attempts.add_metric([task], row.get("attempts", 0))
        in_flight.add_metric([task], row.get("in_flight", 0))
        for status in TERMINAL_STATES:
            completed.add_metric([task, status.value], row.get(status.value, 0))
    yield from (submitted, completed, attempts, in_flight)
    yield _histogram(
        "queue_wait", "Seconds from submission to start.", tasks, "queue_wait_histogram"
    )
    yield _histogram("run_time", "Seconds a job's last attempt ran.", tasks, "run_time_histogram")


def _cluster_metrics(analyzer: dict[str, Any], blocks: list[dict[str, Any]]) -> Iterator[Metric]:
    restarts = CounterMetricFamily(
        f"{PREFIX}_worker_restarts", "Worker processes that died and restarted.", labels=["block"]
    )
    for block, count in (analyzer.get("worker_restarts") or {}).get("by_block", {}).items():
        restarts.add_metric([str(block)], count)
    yield restarts
    backlog = analyzer.get("backlog")
    if backlog is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}_consumer_lag", "Records on pendingJobs not yet committed.", value=backlog
        )
    yield from _block_metrics(blocks)
    busy = sum(1 for b in blocks if b.get("job"))
    yield GaugeMetricFamily(f"{PREFIX}_blocks", "Working blocks.", value=len(blocks))
    yield GaugeMetricFamily(f"{PREFIX}_blocks_busy", "Blocks running a job.", value=busy)
    throughput = (analyzer.get("throughput") or {}).get("per_second", 0.0)
    yield GaugeMetricFamily(
        f"{PREFIX}_throughput_per_second", "Completions per second, last minute.", value=throughput
    )


MAX_ERROR_LABEL = 200


def _block_metrics(blocks: list[dict[str, Any]]) -> Iterator[Metric]:
    """Per block: consume-thread restarts, middleware hooks that raised, and whether it is
    dead right now (its thread died and is starting again)."""
    restarts = CounterMetricFamily(
        f"{PREFIX}_block_restarts",
        "Times a block's consume thread died and restarted.",
        labels=["block"],
    )
    hook_errors = CounterMetricFamily(
        f"{PREFIX}_middleware_errors", "Middleware hooks that raised.", labels=["block"]
    )
    dead = GaugeMetricFamily(
        f"{PREFIX}_block_dead", "1 while a block's consume thread is dead.", labels=["block"]
    )
    # Why each block's consume thread last died, as a label (an info metric, always 1):
    # the text an alert can show, next to the counter it fires on.
    last_error = GaugeMetricFamily(
        f"{PREFIX}_block_last_error",
        "Why a block's consume thread last died (the error label); 1 while it has one.",
        labels=["block", "error"],
    )
    for row in blocks:
        name = str(row.get("name") or row.get("block"))
        restarts.add_metric([name], row.get("restarts") or 0)
        hook_errors.add_metric([name], row.get("hook_errors") or 0)
        dead.add_metric([name], 1 if row.get("state") == BlockState.DEAD else 0)
        if row.get("error"):
            last_error.add_metric([name, str(row["error"])[:MAX_ERROR_LABEL]], 1)
    yield from (restarts, hook_errors, dead, last_error)


class ClusterCollector(Collector):
    def __init__(self, figures: ClusterFigures) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self._figures.get()
        except ClusterError:
            yield GaugeMetricFamily(f"{PREFIX}_up", "1 if the analyzer answered.", value=0)
            return
        yield GaugeMetricFamily(f"{PREFIX}_up", "1 if the analyzer answered.", value=1)
        yield from _job_metrics(figures["analyzer"])
        yield from _cluster_metrics(figures["analyzer"], figures["blocks"])


def exposition(figures: ClusterFigures) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(figures))
    return generate_latest(registry)
