import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computeinfra.errors import RequestError
from computeinfra.protocol import (
    Completion,
    ErrorInfo,
    JobRequest,
    Status,
    decode_completion,
    decode_request,
    encode_completion,
    encode_request,
    key_problem,
    key_text,
    named_task,
)


def test_request_round_trip() -> None:
    request = JobRequest(task="sleep", payload={"seconds": 1}, result_dir="demo")
    assert decode_request(encode_request(request)) == request


def test_the_readme_kcat_value_is_a_valid_request() -> None:
    raw = b'{"task":"sleep","payload":{"seconds":1},"result_dir":"demo"}'
    assert decode_request(raw).task == "sleep"


def test_completion_round_trip_keeps_error_and_outputs() -> None:
    completion = Completion(
        key="k",
        task="sleep",
        status=Status.FAILED,
        result_dir="demo",
        outputs=[{"path": "demo/a.jpg", "bytes": 3, "original_bytes": 9}],
        error=ErrorInfo(type="ValueError", message="bad"),
        attempts=2,
    )
    decoded = decode_completion(encode_completion(completion))
    assert decoded == completion
    assert decoded.outputs[0].model_extra == {"original_bytes": 9}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (None, "no value"),
        (b"", "no value"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"task": "sleep"', "not valid JSON"),
        (b"[1, 2]", "JSON list"),
        (b'{"payload": {}, "result_dir": "d"}', "task: Field required"),
        (b'{"task": "sleep", "result_dir": "d"}', "payload: Field required"),
        (b'{"task": "sleep", "payload": {}}', "result_dir: Field required"),
        (b'{"task": "sleep", "payload": [], "result_dir": "d"}', "payload: Input should be"),
        (b'{"task": "sleep", "payload": {}, "result_dir": "d", "x": 1}', "x: Extra inputs"),
        (b'{"task": "", "payload": {}, "result_dir": "d"}', "task: String should have"),
    ],
)
def test_bad_requests_are_named(raw: bytes | None, words: str) -> None:
    with pytest.raises(RequestError) as caught:
        decode_request(raw)
    assert words in str(caught.value)


def test_missing_field_is_reported_as_the_field() -> None:
    with pytest.raises(RequestError) as caught:
        decode_request(b'{"task": "sleep", "payload": {}}')
    assert caught.value.field == "result_dir"


def test_deeply_nested_json_is_rejected_not_crashing() -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RequestError):
        decode_request(raw)


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_request_error(raw: bytes) -> None:
    try:
        decode_request(raw)
    except RequestError as exc:
        assert str(exc)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_any_json_object_decodes_or_raises_request_error(data: dict[str, object]) -> None:
    try:
        decode_request(json.dumps(data).encode())
    except RequestError as exc:
        assert str(exc)


def test_keys() -> None:
    assert key_problem(b"job-1") is None
    assert "UTF-8" in (key_problem(b"\xff") or "")
    assert "at most" in (key_problem(b"k" * 1000) or "")
    assert key_text(b"a\xffb") == "a\\xffb"


def test_a_handed_over_record_is_known_by_its_header_in_either_form() -> None:
    from computeinfra.protocol import HANDOVERS_HEADER, handed_over

    assert handed_over([("trace", b"x"), (HANDOVERS_HEADER, b"1")])
    assert handed_over({HANDOVERS_HEADER: b"1"})
    assert not handed_over([("trace", b"x")]) and not handed_over(None)


def test_the_attempts_a_passed_on_job_made_are_read_from_its_header() -> None:
    from computeinfra.protocol import ATTEMPTS_HEADER, MAX_ATTEMPTS_CAP, attempts_made

    assert attempts_made([("trace", b"x"), (ATTEMPTS_HEADER, b"2")]) == 2
    assert attempts_made({ATTEMPTS_HEADER: "3"}) == 3
    assert attempts_made(None) == 0 and attempts_made([("trace", b"x")]) == 0
    # Not ours to read, or out of bounds: never an error, never past the cap.
    assert attempts_made([(ATTEMPTS_HEADER, b"two")]) == 0
    assert attempts_made([(ATTEMPTS_HEADER, b"\xff")]) == 0
    assert attempts_made([(ATTEMPTS_HEADER, b"-4")]) == 0
    assert attempts_made([(ATTEMPTS_HEADER, b"999")]) == MAX_ATTEMPTS_CAP


def test_the_task_a_raw_request_names() -> None:
    assert named_task(b'{"task": "sleep", "payload": {}}') == "sleep"
    assert named_task(b"[1]") is None
    assert named_task(b"\xff") is None
    assert named_task(None) is None
    assert named_task(b'{"task": 5}') is None
    assert named_task(b'{"task": ""}') is None
    # Only a name a request may carry: a rejection under it must be small and writable.
    assert named_task(json.dumps({"task": "t" * 200}).encode()) == "t" * 200
    assert named_task(json.dumps({"task": "t" * 201}).encode()) is None
    assert named_task(json.dumps({"task": "t" * 1_000_000}).encode()) is None
    assert named_task(b'{"task": "a\\ud800b"}') is None
