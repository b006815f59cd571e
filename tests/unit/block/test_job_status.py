"""The jobStatus middleware and the web app's job board, as plain logic (no Kafka)."""

from __future__ import annotations

from pydantic import BaseModel

from computeinfra.block.jobs import Assignment
from computeinfra.block.middleware.status import StatusPublisher
from computeinfra.protocol import (
    JOB_STATUS_TOPIC,
    Completion,
    ErrorInfo,
    JobRequest,
    JobState,
    Status,
    decode_job_status,
)
from computeinfra.web.board import JobBoard


class Sink:
    """Stands in for a producer: records what was produced, and when it was flushed."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, bytes]] = []
        self.flushed_at: list[int] = []

    def produce(
        self, topic: str, value: bytes | str | None = None, key: bytes | str | None = None
    ) -> None:
        assert isinstance(value, bytes) and isinstance(key, bytes)
        self.produced.append((topic, key, value))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.flushed_at.append(len(self.produced))
        return 0


class Empty(BaseModel):
    pass


def assignment(attempt: int = 1) -> Assignment:
    return Assignment("k1", "sleep", Empty(), "out", 100.0, max_attempts=3, attempt=attempt)


def completion(status: Status = Status.SUCCEEDED, attempts: int = 2) -> Completion:
    error = None if status is Status.SUCCEEDED else ErrorInfo(type="ValueError", message="no")
    return Completion(
        key="k1", task="sleep", status=status, result_dir="out", attempts=attempts,
        submitted_at=100.0, started_at=101.0, finished_at=102.0, error=error, block=1,
    )  # fmt: skip


def test_running_on_dispatch_flushed_before_commit_then_terminal_in_the_transaction() -> None:
    sink = Sink()
    publisher = StatusPublisher("unused:1", block=1, node="n1", producer=sink)
    publisher.before_dispatch(assignment(1))
    publisher.before_dispatch(assignment(2))
    running = [decode_job_status(value) for _t, _k, value in sink.produced]
    assert [(s.state, s.attempt, s.block, s.node) for s in running] == [
        (JobState.RUNNING, 1, 1, "n1"),
        (JobState.RUNNING, 2, 1, "n1"),
    ]
    assert {topic for topic, _k, _v in sink.produced} == {JOB_STATUS_TOPIC}
    publisher.before_commit()
    assert sink.flushed_at == [2]  # both running records delivered before the commit
    (record,) = publisher.extra_records(completion(Status.FAILED), b"{}")
    assert (record.topic, record.key) == (JOB_STATUS_TOPIC, b"k1")
    final = decode_job_status(record.value)
    assert (final.state, final.attempt, final.error.message) == (JobState.FAILED, 2, "no")
    assert final.terminal


def test_no_flush_when_nothing_was_produced() -> None:
    sink = Sink()
    StatusPublisher("unused:1", block=0, producer=sink).before_commit()
    assert sink.flushed_at == []


def test_board_never_moves_a_job_back() -> None:
    board = JobBoard(capacity=10)
    request = JobRequest(task="sleep", payload={}, result_dir="out", submitted_at=100.0)
    publisher = StatusPublisher("unused:1", block=0, producer=Sink())
    final = completion()
    assert board.completion(final) is not None
    # A running status and the request, read late from other topics, change nothing.
    board.status(decode_job_status(publisher.extra_records(final, None)[0].value))
    assert board.request("k1", request, 100.5) is None
    view = board.get("k1")
    assert view is not None and view.state is JobState.SUCCEEDED and view.completion == final


def test_board_keeps_what_later_steps_do_not_carry_and_bounds_its_size() -> None:
    board = JobBoard(capacity=2)
    request = JobRequest(task="sleep", payload={}, result_dir="kept", submitted_at=100.0)
    board.request("k1", request, 100.0)
    sink = Sink()
    StatusPublisher("unused:1", block=0, producer=sink).before_dispatch(assignment())
    # A status from an older writer, without the result folder.
    status = decode_job_status(sink.produced[0][2]).model_copy(update={"result_dir": None})
    running = board.status(status)
    assert running is not None and running.state is JobState.RUNNING
    assert running.result_dir == "kept" and running.max_attempts == 3
    board.request("k2", request.model_copy(update={"submitted_at": 101.0}), 101.0)
    board.request("k3", request.model_copy(update={"submitted_at": 102.0}), 102.0)
    assert board.get("k1") is None
    assert [v.key for v in board.recent(10)] == ["k3", "k2"]
    assert [v.key for v in board.recent(10, keys=["k2", "nope"])] == ["k2"]
