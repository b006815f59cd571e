"""Hostile `pendingJobs` records, drawn by hypothesis, for the fuzz test and `bench/fuzz.py`.

Every record drawn here is invalid on purpose, so each keyed one must end in exactly one
`rejected` completion, and each keyless one in `deadJobs`.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from computeinfra import Client
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import COMPLETED_TOPIC, DEAD_TOPIC, PENDING_TOPIC
from computeinfra.testing.stack import DevStack
from tests.helpers import read_topic, wait_for

VALID = b'{"task": "sleep", "payload": {"seconds": 0}, "result_dir": "fuzz"}'
NEAR_LIMIT = 1_000_000 - 10_000  # just under the producer's message.max.bytes

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
hostile_paths = st.sampled_from(
    ["/etc/passwd", "../../etc", "..", "", " ", "a\x00b", "x/../../y", "\u202e.png", "~root"]
) | st.text(max_size=60)


def _request(task: object, payload: object, result_dir: object, **extra: object) -> bytes:
    body = {"task": task, "payload": payload, "result_dir": result_dir, **extra}
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


bad_payloads = st.one_of(
    st.builds(
        lambda s: _request("sleep", {"seconds": s}, "fuzz"),
        st.one_of(
            # No digits: pydantic reads "0" as the number 0, which would be a valid sleep.
            st.text(st.characters(blacklist_categories=("Nd",))),
            st.integers(max_value=-1),
            st.integers(min_value=10**6),
            st.none(),
            st.lists(st.integers(), max_size=3),
        ),
    ),
    st.builds(
        lambda k, v: _request("sleep", {"seconds": 0, k: v}, "fuzz"),
        st.text(min_size=1, max_size=20).filter(lambda k: k != "seconds"),
        json_values,
    ),
    st.builds(
        lambda p, q: _request("image-compression", {"images": [p], "quality": q}, "fuzz"),
        hostile_paths,
        st.integers(-10, 200),
    ),
    st.builds(
        lambda d: _request("sleep", {"seconds": 0}, d),
        hostile_paths.filter(
            lambda d: (
                d.strip(" ") in ("", "..", ".")
                or d.startswith("/")
                or "\x00" in d
                or d.startswith("..")
            )
        ),
    ),
    st.builds(
        lambda t: _request(t, {}, "fuzz"),
        st.text(max_size=50).filter(lambda t: t not in ("sleep",)),
    ),
    st.builds(
        lambda v: _request("sleep", {"seconds": 0}, "fuzz", **{"\u00e9xtra": v}), json_values
    ),
)

values = st.one_of(
    st.binary(max_size=3000),
    st.integers(1, len(VALID) - 1).map(lambda n: VALID[:n]),
    st.integers(200, 20_000).map(lambda d: b"[" * d + b"]" * d),
    st.integers(200, 5_000).map(
        lambda d: (
            b'{"task": "sleep", "payload": '
            + b'{"a": ' * d
            + b"1"
            + b"}" * d
            + b', "result_dir": "fuzz"}'
        )
    ),
    st.integers(600_000, NEAR_LIMIT).map(lambda n: _request("sleep", {"seconds": "x" * n}, "f")),
    json_values.map(lambda v: json.dumps(v).encode()),
    bad_payloads,
)
keys = st.one_of(
    st.none(),
    st.just(b""),
    st.binary(min_size=1, max_size=300),
    st.text(min_size=1, max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@dataclass(frozen=True)
class FuzzRecord:
    key: bytes | None
    value: bytes


def draw_records(count: int) -> list[FuzzRecord]:
    """``count`` hostile records; keyed ones get a unique suffix so answers can be matched."""
    drawn: list[tuple[bytes | None, bytes]] = []

    @settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(keys, values)
    def collect(key: bytes | None, value: bytes) -> None:
        drawn.append((key, value))

    collect()
    run = uuid.uuid4().hex[:8].encode()
    return [
        FuzzRecord(key + b"~fz" + run + str(i).encode() if key else key, value)
        for i, (key, value) in enumerate(drawn)
    ]


def _answers(bootstrap: str) -> Counter[bytes]:
    counts: Counter[bytes] = Counter()
    for key, value, _headers in read_topic(bootstrap, COMPLETED_TOPIC):
        if key is not None and value and b'"rejected"' in value:
            counts[key] += 1
    return counts


def run_fuzz(stack: DevStack, client: Client, count: int) -> dict[str, object]:
    """Produce ``count`` hostile records; check every one is answered and nothing stalls."""
    bootstrap = stack.settings.bootstrap_servers
    records = draw_records(count)
    keyed = [r.key for r in records if r.key]
    dead_before = len(read_topic(bootstrap, DEAD_TOPIC))
    producer = make_producer(bootstrap, **{"message.max.bytes": 1_000_000})
    for record in records:
        producer.produce(PENDING_TOPIC, key=record.key, value=record.value)
        producer.poll(0)
    assert producer.flush(60) == 0
    after = client.submit("sleep", {"seconds": 0}, "fuzz/after")
    assert after.result(600).ok, "a normal job after the fuzz records did not succeed"

    def all_answered() -> Counter[bytes] | None:
        answers = _answers(bootstrap)
        return answers if all(answers[k] >= 1 for k in keyed) else None

    answers = wait_for(all_answered, 600, "every fuzz record to be rejected", interval=1)
    keyless = len(records) - len(keyed)
    wait_for(
        lambda: len(read_topic(bootstrap, DEAD_TOPIC)) >= dead_before + keyless,
        120,
        "every keyless record in deadJobs",
        interval=1,
    )
    return {
        "records": len(records),
        "keyed": len(keyed),
        "keyless": keyless,
        "answered_more_than_once": sorted(k for k in keyed if answers[k] != 1)[:5],
        "dead_letters": len(read_topic(bootstrap, DEAD_TOPIC)) - dead_before,
    }
