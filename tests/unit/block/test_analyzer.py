from computeinfra.analyzer.analyzer import Analyzer
from computeinfra.analyzer.events import EventKind, JobEvent
from computeinfra.protocol import Completion, Status


def completion(key: str, task: str | None, status: Status, wait: float, run: float) -> Completion:
    submitted = 1000.0
    started = submitted + wait if status is not Status.REJECTED else None
    return Completion(
        key=key,
        task=task,
        status=status,
        result_dir="d",
        attempts=1,
        submitted_at=submitted,
        started_at=started,
        finished_at=(started or submitted) + run,
    )


def test_counts_and_percentiles_per_task() -> None:
    analyzer = Analyzer(lag=lambda: 7)
    for i in range(100):
        analyzer.submitted("sleep")
        analyzer.completed(completion(f"k{i}", "sleep", Status.SUCCEEDED, i / 100, 1.0))
    analyzer.submitted("sleep")  # still running
    analyzer.submitted(None)
    analyzer.completed(completion("bad", None, Status.REJECTED, 0, 0))
    analyzer.record(
        [
            JobEvent(EventKind.STARTED, "sleep", 0, "k1"),
            JobEvent(EventKind.WORKER_RESTART, "sleep", 1, "open"),
        ]
    )
    snap = analyzer.snapshot()
    sleep = snap["tasks"]["sleep"]
    assert (sleep["submitted"], sleep["succeeded"], sleep["in_flight"]) == (101, 100, 1)
    assert sleep["attempts"] == 1
    assert abs(sleep["queue_wait"]["p50"] - 0.495) < 0.01
    assert abs(sleep["queue_wait"]["p99"] - 0.98) < 0.02
    assert abs(sleep["run_time"]["p95"] - 1.0) <= 0.01
    assert snap["tasks"]["(unreadable)"]["rejected"] == 1
    assert snap["tasks"]["(unreadable)"]["run_time"]["count"] == 0
    assert snap["totals"]["submitted"] == 102
    assert snap["totals"]["succeeded"] == 100
    assert snap["worker_restarts"] == {"total": 1, "by_block": {"1": 1}}
    assert snap["backlog"] == 7


def test_a_completion_read_before_its_request_still_counts_as_submitted() -> None:
    """The analyzer reads both topics through one consumer, with no order between them: in
    CI it read 12 successes and 3 rejections while it had read 9 requests, and reported 9
    submitted jobs, fewer than it had answered."""
    analyzer = Analyzer()
    for i in range(3):
        analyzer.completed(completion(f"k{i}", "wc", Status.SUCCEEDED, 0, 0))
    analyzer.submitted("wc")
    early = analyzer.snapshot()["tasks"]["wc"]
    assert (early["submitted"], early["succeeded"], early["in_flight"]) == (3, 3, 0)
    assert early["requests_read"] == 1
    for _ in range(3):  # the other two requests, and one not answered yet
        analyzer.submitted("wc")
    late = analyzer.snapshot()["tasks"]["wc"]
    assert (late["submitted"], late["succeeded"], late["in_flight"]) == (4, 3, 1)
    assert late["requests_read"] == 4
