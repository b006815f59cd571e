"""Every built-in task, submitted through the SDK and run by the real cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from computeinfra import Client, JobError, Status
from tests.helpers import Stack, completions_for
from tests.unit.test_tasks import make_image

TIMEOUT = 120


def test_sleep(stack: Stack, client: Client) -> None:
    completion = client.submit("sleep", {"seconds": 0.2}, "e2e/sleep").result(TIMEOUT)
    assert completion.result == {"slept": 0.2}
    assert completion.finished_at - completion.started_at >= 0.2
    assert completion.submitted_at <= completion.started_at
    assert completion.block in (0, 1)


def test_word_count_text_and_file(stack: Stack, client: Client) -> None:
    (stack.inputs / "words.txt").write_text("to be or not to be\n")
    from_file = client.submit("word-count", {"files": ["words.txt"]}, "e2e/wc-file")
    from_text = client.submit("word-count", {"text": "a b a"}, "e2e/wc-text")
    done = from_file.result(TIMEOUT)
    counts = json.loads((stack.results / done.outputs[0].path).read_text())
    assert counts["counts"] == {"be": 2, "not": 1, "or": 1, "to": 2}
    assert from_text.result(TIMEOUT).result["total_words"] == 3


def test_image_compression_gives_valid_smaller_images(stack: Stack, client: Client) -> None:
    folder = stack.inputs / "photos"
    folder.mkdir()
    images = [str(make_image(folder / f"p{i}.png", (480, 360))) for i in range(3)]
    low = client.submit("image-compression", {"images": images, "quality": 20}, "e2e/img-low")
    high = client.submit("image-compression", {"images": images, "quality": 90}, "e2e/img-high")
    low_done, high_done = low.result(TIMEOUT), high.result(TIMEOUT)
    assert len(low_done.outputs) == len(high_done.outputs) == 3
    for small, large in zip(low_done.outputs, high_done.outputs, strict=True):
        path = stack.results / small.path
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.size == (480, 360)
        assert small.bytes == path.stat().st_size
        assert small.model_extra["compressed_bytes"] < small.model_extra["original_bytes"]
        assert small.bytes < large.bytes
    # Results are renamed into place: no temporary files are left beside them.
    assert not [p for p in (stack.results / "e2e").rglob("*") if p.name.endswith(".tmp")]


def test_task_exception_fails_the_job_with_its_type_and_message(
    stack: Stack, client: Client
) -> None:
    handle = client.submit("explode", {"message": "disk on fire"}, "e2e/explode")
    with pytest.raises(JobError) as caught:
        handle.result(TIMEOUT)
    completion = caught.value.completion
    assert completion.status is Status.FAILED
    assert completion.error.type == "ValueError"
    assert completion.error.message == "disk on fire"
    assert "sample_tasks.py" in (completion.error.traceback or "")
    assert completion.attempts == 1


def test_sdk_handles_callbacks_and_asyncio(stack: Stack, client: Client) -> None:
    import asyncio

    called = []
    handle = client.submit("sleep", {"seconds": 0}, "e2e/cb")
    handle.add_done_callback(lambda h: called.append(h.key))
    assert asyncio.run(handle.aresult(TIMEOUT)).ok
    assert handle.done()
    assert called == [handle.key]


def test_a_job_completed_before_the_client_started_still_resolves(
    stack: Stack, client: Client
) -> None:
    key = client.submit("sleep", {"seconds": 0}, "e2e/late").result(TIMEOUT).key
    with Client(settings=stack.settings) as fresh:
        assert fresh.job(key).result(TIMEOUT).key == key
    assert len(completions_for(stack.settings.bootstrap_servers, [key])[key]) == 1


def test_user_tasks_come_from_computeinfra_tasks(stack: Stack, client: Client) -> None:
    done = client.submit("where", {}, "e2e/where").result(TIMEOUT)
    assert Path(stack.results / done.outputs[0].path).read_text() == str(done.result["pid"])
