from computeinfra.cluster.analyzer import Analyzer
from computeinfra.cluster.events import EventKind, JobEvent


def test_counts_and_percentiles_per_task() -> None:
    analyzer = Analyzer(lag=lambda: 7)
    events = []
    for i in range(100):
        events += [
            JobEvent(EventKind.RECEIVED, "sleep", 0, f"k{i}"),
            JobEvent(EventKind.STARTED, "sleep", 0, f"k{i}"),
            JobEvent(
                EventKind.COMPLETED,
                "sleep",
                0,
                f"k{i}",
                status="succeeded",
                queue_wait=i / 100,
                run_time=1.0,
            ),
        ]
    events += [
        JobEvent(EventKind.RECEIVED, None, 1, "bad"),
        JobEvent(EventKind.COMPLETED, None, 1, "bad", status="rejected"),
        JobEvent(EventKind.RECEIVED, "sleep", 1, "open"),
        JobEvent(EventKind.WORKER_RESTART, "sleep", 1, "open"),
    ]
    analyzer.record(events)
    snap = analyzer.snapshot()
    sleep = snap["tasks"]["sleep"]
    assert (sleep["submitted"], sleep["succeeded"], sleep["in_flight"]) == (101, 100, 1)
    assert abs(sleep["queue_wait"]["p50"] - 0.495) < 0.01
    assert abs(sleep["queue_wait"]["p99"] - 0.98) < 0.02
    assert abs(sleep["run_time"]["p95"] - 1.0) <= 0.01
    assert snap["tasks"]["(unreadable)"]["rejected"] == 1
    assert snap["totals"]["submitted"] == 102
    assert snap["totals"]["succeeded"] == 100
    assert snap["worker_restarts"] == {"total": 1, "by_block": {"1": 1}}
    assert snap["throughput"]["last_minute"] == 101
    assert snap["backlog"] == 7
