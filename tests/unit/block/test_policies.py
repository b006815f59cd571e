import pytest

from computeinfra.block.jobs import Assignment, Failure, Outcome
from computeinfra.block.middleware.dead_letter import DeadLetterFailures
from computeinfra.block.middleware.retries import RetryPolicy, backoff_seconds
from computeinfra.protocol import DEAD_TOPIC, Completion, ErrorInfo, Status
from computeinfra.tasks.sleep import SleepPayload


def assignment(attempt: int, max_attempts: int = 3) -> Assignment:
    return Assignment("k", "sleep", SleepPayload(seconds=0), "d", None, max_attempts, 10.0, attempt)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_seconds(n, 0.5, 3) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        backoff_seconds(0, 1, 2)


def test_worker_loss_and_timeouts_are_retried_until_max_attempts() -> None:
    policy = RetryPolicy(0.5, 30)
    lost = Failure("WorkerLost", "died")
    assert policy.retry_delay(assignment(1), lost) == 0.0  # the restart is the pause
    assert policy.retry_delay(assignment(2), lost) == 1.0
    assert policy.retry_delay(assignment(1), Failure("TimeLimitExceeded", "slow")) == 0.5
    assert policy.retry_delay(assignment(2), Failure("TimeLimitExceeded", "slow")) == 1.0
    assert policy.retry_delay(assignment(3), lost) is None
    assert policy.retry_delay(assignment(1, max_attempts=1), lost) is None


def test_only_retryable_task_errors_are_retried() -> None:
    policy = RetryPolicy(0.5, 30)
    plain = Outcome(Status.FAILED, 0.0, error=ErrorInfo(type="ValueError", message="x"))
    marked = Outcome(Status.FAILED, 0.0, error=ErrorInfo(type="Retry", message="x"), retryable=True)
    assert policy.retry_delay(assignment(1), Failure("ValueError", "x", plain)) is None
    assert policy.retry_delay(assignment(1), Failure("Retry", "x", marked)) == 0.5


def test_final_outcome_of_a_lost_worker_names_the_failure() -> None:
    outcome = Failure("WorkerLost", "died thrice").final_outcome(12.0)
    assert outcome.status is Status.FAILED
    assert outcome.error == ErrorInfo(type="WorkerLost", message="died thrice")


def test_failed_jobs_are_dead_lettered_with_the_reason() -> None:
    failed = Completion(
        key="k",
        task="sleep",
        status=Status.FAILED,
        result_dir="d",
        error=ErrorInfo(type="WorkerLost", message="died"),
        attempts=3,
    )
    (record,) = DeadLetterFailures().extra_records(failed, b'{"task": "sleep"}')
    assert (record.topic, record.key, record.value) == (DEAD_TOPIC, b"k", b'{"task": "sleep"}')
    headers = dict(record.headers)
    assert headers["computeinfra.reason"] == b"WorkerLost: died"
    assert headers["computeinfra.attempts"] == b"3"
    ok = failed.model_copy(update={"status": Status.SUCCEEDED, "error": None})
    assert DeadLetterFailures().extra_records(ok, b"{}") == ()
