"""One job's poison is its answer alone (issue #13): a result too large for Kafka, a value
JSON cannot carry, a result directory that names a file. Each gets one clear ``failed``
completion, and the jobs sent with it in the same batch all succeed."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from computeinfra import Client, Status
from computeinfra.kafka.clients import make_producer
from computeinfra.kafka.partitioner import partition_for
from computeinfra.protocol import COMPLETED_TOPIC, DEAD_TOPIC, PENDING_TOPIC, FailureKind
from computeinfra.testing.stack import DevStack
from tests.helpers import completions_for, read_topic, wait_for

TIMEOUT = 120


def _mixed(stack: DevStack, client: Client) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    (stack.results / f"a-file-{tag}").parent.mkdir(parents=True, exist_ok=True)
    (stack.results / f"a-file-{tag}").write_text("not a folder")
    poison = {
        "big": client.submit("big-result", {"size": 5_000_000}, result_dir="poison"),
        "json": client.submit("not-json", {}, result_dir="poison"),
        "path": client.submit("sleep", {"seconds": 0}, result_dir=f"a-file-{tag}"),
    }
    fine = [client.submit("sleep", {"seconds": 0}, result_dir="poison") for _ in range(30)]
    return {"poison": poison, "fine": fine}


def test_poison_jobs_fail_alone_and_everything_else_succeeds(
    stack: DevStack, client: Client
) -> None:
    jobs = _mixed(stack, client)
    poison = {name: h.completion(timeout=TIMEOUT) for name, h in jobs["poison"].items()}
    fine = [h.completion(timeout=TIMEOUT) for h in jobs["fine"]]
    assert all(c.status is Status.SUCCEEDED for c in fine)
    expected = {
        "big": FailureKind.RESULT_TOO_LARGE,
        "json": FailureKind.RESULT_NOT_JSON,
        "path": FailureKind.PATH,
    }
    for name, kind in expected.items():
        completion = poison[name]
        assert completion.status is Status.FAILED, (name, completion)
        assert completion.error is not None and completion.error.type == kind, completion.error
        assert completion.attempts == 1  # not retried: it would fail the same way
    assert "COMPUTEINFRA_MAX_RESULT_BYTES" in (poison["big"].error.message or "")
    assert poison["path"].error.field == "result_dir"
    keys = [c.key for c in (*poison.values(), *fine)]
    found = completions_for(stack.settings.bootstrap_servers, keys)
    assert all(len(completions) == 1 for completions in found.values())


def test_a_keyless_record_too_large_to_copy_is_dead_lettered_and_its_partition_flows(
    stack: DevStack, client: Client
) -> None:
    # A client whose producer allows more than librdkafka's default message.max.bytes can
    # put a record on pendingJobs that a block's own producer cannot copy to deadJobs as it
    # is: that copy failed its transaction, which was retried forever, and the block took
    # nothing more (a review of issue #13). Every partition gets one, then jobs on all.
    bootstrap = stack.settings.bootstrap_servers
    marker = f"huge-keyless-{uuid.uuid4().hex[:8]}".encode()
    producer = make_producer(bootstrap, **{"message.max.bytes": 1_048_000})
    for partition in range(stack.settings.partitions):
        producer.produce(PENDING_TOPIC, marker + b" " * 1_040_000, None, partition)
    assert producer.flush(30) == 0
    handles = [client.submit("sleep", {"seconds": 0}, result_dir="poison") for _ in range(30)]
    assert all(h.completion(timeout=TIMEOUT).status is Status.SUCCEEDED for h in handles)

    def dead() -> list | None:
        found = [r for r in read_topic(bootstrap, DEAD_TOPIC) if marker in dict(r[2]).get(
            "computeinfra.value-head", b"")]  # fmt: skip
        return found if len(found) == stack.settings.partitions else None

    for key, value, headers in wait_for(dead, TIMEOUT, "every huge keyless record dead-lettered"):
        reason = dict(headers)["computeinfra.reason"].decode()
        assert key is None and value == b"" and "no key" in reason and "too large" in reason


@contextlib.contextmanager
def _max_message_bytes(bootstrap: str, topic: str, limit: int) -> Iterator[None]:
    """``topic`` takes records up to ``limit`` bytes (a batch's framing included) for a
    while, as an operator may have set it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def alter(op: AlterConfigOpType, value: str) -> None:
        entry = ConfigEntry("max.message.bytes", value, incremental_operation=op)
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    def now(value: str | None) -> Callable[[], bool]:
        def check() -> bool:
            resource = ConfigResource(ResourceType.TOPIC, topic)
            entries = admin.describe_configs([resource])[resource].result(30)
            entry = entries["max.message.bytes"]
            return entry.value == value if value is not None else entry.is_default

        return check

    alter(AlterConfigOpType.SET, str(limit))
    wait_for(now(str(limit)), 60, f"{topic} to take records up to {limit} bytes")
    try:
        yield
    finally:
        alter(AlterConfigOpType.DELETE, "")
        wait_for(now(None), 60, f"{topic} to take its default again")


def test_a_dead_letter_the_topic_refuses_is_dropped_and_the_failure_answered(
    stack: DevStack, client: Client
) -> None:
    # deadJobs takes 4 KB records: the copy of a failed 20 KB request is refused for good.
    # Before, that transaction was retried forever and the block took nothing more.
    bootstrap = stack.settings.bootstrap_servers
    with _max_message_bytes(bootstrap, DEAD_TOPIC, 4096):
        big = client.submit("explode", {"message": "x" * 20_000}, result_dir="poison")
        failure = big.completion(timeout=TIMEOUT)
        after = [client.submit("sleep", {"seconds": 0}, result_dir="poison") for _ in range(12)]
        assert all(h.completion(timeout=TIMEOUT).status is Status.SUCCEEDED for h in after)
    assert failure.status is Status.FAILED and failure.error is not None
    assert failure.error.type == "ValueError"  # its own answer, only the copy dropped
    assert not [r for r in read_topic(bootstrap, DEAD_TOPIC) if r[0] == big.key.encode()]
    found = completions_for(bootstrap, [big.key, *(h.key for h in after)])
    assert all(len(completions) == 1 for completions in found.values())


def test_a_completion_the_topic_refuses_becomes_a_small_failure(
    stack: DevStack, client: Client
) -> None:
    # Small answers on the big one's partition, at the same time: a broker refuses a whole
    # batch, so they may be refused with it, and must still get their own answers.
    bootstrap = stack.settings.bootstrap_servers
    partitions = stack.settings.partitions
    big_key = f"big-{uuid.uuid4().hex[:8]}"
    same = partition_for(big_key.encode(), partitions)
    keys = (f"small-{uuid.uuid4().hex[:8]}" for _ in range(10_000))
    near = [k for k in keys if partition_for(k.encode(), partitions) == same][:12]
    with _max_message_bytes(bootstrap, COMPLETED_TOPIC, 8192):
        big = client.submit("big-result", {"size": 20_000}, result_dir="poison", key=big_key)
        after = [client.submit("sleep", {"seconds": 0}, "poison", key=key) for key in near]
        answer = big.completion(timeout=TIMEOUT)
        assert all(h.completion(timeout=TIMEOUT).status is Status.SUCCEEDED for h in after)
    assert answer.status is Status.FAILED and answer.error is not None
    assert answer.error.type == FailureKind.ANSWER_REFUSED
    assert "ended succeeded" in answer.error.message and "max.message.bytes" in answer.error.message
    assert answer.result is None and answer.attempts == 1
    found = completions_for(bootstrap, [big.key, *(h.key for h in after)])
    assert all(len(completions) == 1 for completions in found.values())
