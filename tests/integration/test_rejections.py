"""Bad input never kills a supervisor or stalls a partition: it gets a clear `rejected`."""

from __future__ import annotations

import json
import uuid

import pytest

from computeinfra import Client, Status
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import DEAD_TOPIC, PENDING_TOPIC
from tests.helpers import Stack, completions_for, read_topic, wait_for

TIMEOUT = 120


def job(
    task: str = "sleep", payload: object = None, result_dir: str = "rej", **extra: object
) -> bytes:
    body = {
        "task": task,
        "payload": {"seconds": 0} if payload is None else payload,
        "result_dir": result_dir,
        **extra,
    }
    return json.dumps(body).encode()


CASES: dict[str, tuple[bytes | None, str, str | None]] = {
    # name: (value, words the message must contain, field named)
    "not-json": (b'{"task": "sleep", ', "not valid JSON", None),
    "not-utf8": (b"\xff\xfe\x00garbage", "not UTF-8", None),
    "json-array": (b"[1, 2, 3]", "JSON list, expected an object", None),
    "empty-value": (None, "no value", None),
    "missing-task": (b'{"payload": {}, "result_dir": "x"}', "task: Field required", "task"),
    "missing-payload": (
        b'{"task": "sleep", "result_dir": "x"}',
        "payload: Field required",
        "payload",
    ),
    "missing-result-dir": (
        b'{"task": "sleep", "payload": {}}',
        "result_dir: Field required",
        "result_dir",
    ),
    "unknown-task": (job("teleport"), "unknown task 'teleport'; known tasks:", "task"),
    "wrong-type": (
        job(payload={"seconds": "soon"}),
        "payload.seconds: Input should be a valid",
        "payload.seconds",
    ),
    "out-of-range": (
        job(payload={"seconds": 1e9}),
        "payload.seconds: Input should be less than or equal to 3000",
        "payload.seconds",
    ),
    "unknown-field": (
        job(payload={"seconds": 0, "speed": "fast"}),
        "payload.speed: Extra inputs are not permitted",
        "payload.speed",
    ),
    "missing-input": (
        job("image-compression", {"images": ["nope.png"], "quality": 50}),
        "'nope.png' does not exist",
        "payload.images.0",
    ),
    "input-outside-roots": (
        job("word-count", {"files": ["/etc/hostname"]}),
        "outside the input roots",
        "payload.files.0",
    ),
    "absolute-result-dir": (job(result_dir="/tmp/evil"), "is absolute", "result_dir"),
    "escaping-result-dir": (job(result_dir="../../evil"), "leaves the results root", "result_dir"),
    "attempts-over-cap": (
        job(max_attempts=50),
        "max_attempts: Input should be less than or equal to 10",
        "max_attempts",
    ),
    "time-limit-over-cap": (
        job(time_limit=1e6),
        "time_limit: Input should be less than or equal to 604800",
        "time_limit",
    ),
    # A request may raise a task's limit only up to the task's max_time_limit.
    "time-limit-over-task-max": (
        job(task="explode", payload={}, time_limit=601),
        "longer than task 'explode' allows (600 s",
        "time_limit",
    ),
    "oversized": (
        job(payload={"seconds": 0, "pad": "x" * 600_000}),
        "the limit is 524288 bytes",
        None,
    ),
}


@pytest.fixture(scope="module")
def rejected(stack: Stack, client: Client) -> dict[str, object]:
    """Produce every bad record at once, then a good job behind them."""
    producer = make_producer(stack.settings.bootstrap_servers)
    run = uuid.uuid4().hex[:8]
    keys = {name: f"rej-{run}-{name}" for name in CASES}
    for name, (value, _words, _field) in CASES.items():
        producer.produce(PENDING_TOPIC, key=keys[name].encode(), value=value)
    producer.produce(PENDING_TOPIC, key=b"\xff\xfe-binary-key-" + run.encode(), value=job())
    producer.produce(PENDING_TOPIC, key=None, value=job(result_dir=f"nokey-{run}"))
    assert producer.flush(30) == 0
    good = client.submit("sleep", {"seconds": 0}, "rej/good")
    return {
        "completions": {name: client.job(key).completion(TIMEOUT) for name, key in keys.items()},
        "good": good.result(TIMEOUT),
        "run": run,
        "keys": keys,
    }


# The cases whose value names no task readably; every other one is a JSON object that does.
UNNAMED = {"not-json", "not-utf8", "json-array", "empty-value", "missing-task"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_record_gets_a_rejected_completion_naming_the_problem(
    rejected: dict, case: str
) -> None:
    completion = rejected["completions"][case]
    _value, words, field = CASES[case]
    assert completion.status is Status.REJECTED
    assert completion.attempts == 0
    assert words in completion.error.message, completion.error.message
    if field:
        assert completion.error.field == field
    # Under the task the record names, readable or not: as the analyzer counts it.
    value = CASES[case][0]
    assert completion.task == (None if case in UNNAMED else json.loads(value)["task"])


def test_each_bad_record_is_answered_exactly_once(stack: Stack, rejected: dict) -> None:
    found = completions_for(stack.settings.bootstrap_servers, rejected["keys"].values())
    assert {key: len(items) for key, items in found.items()} == {
        key: 1 for key in rejected["keys"].values()
    }


def test_a_good_job_behind_bad_ones_still_succeeds(rejected: dict) -> None:
    assert rejected["good"].status is Status.SUCCEEDED


def test_binary_key_is_rejected_under_its_own_key(stack: Stack, rejected: dict) -> None:
    expected = "\\xff\\xfe-binary-key-" + rejected["run"]

    def answered() -> list:
        found = completions_for(stack.settings.bootstrap_servers, [expected])[expected]
        return found

    (completion,) = wait_for(answered, TIMEOUT, "the binary-key rejection")
    assert completion.status is Status.REJECTED
    assert "not UTF-8" in completion.error.message


def test_a_record_without_key_is_dead_lettered_with_its_reason(
    stack: Stack, rejected: dict
) -> None:
    marker = f"nokey-{rejected['run']}".encode()

    def dead() -> list:
        return [
            r
            for r in read_topic(stack.settings.bootstrap_servers, DEAD_TOPIC)
            if r[1] and marker in r[1]
        ]

    ((key, value, headers),) = wait_for(dead, TIMEOUT, "the keyless record in deadJobs")
    assert key is None
    assert json.loads(value)["result_dir"] == marker.decode()
    reason = dict(headers)["computeinfra.reason"].decode()
    assert "no key" in reason
