"""The HTTP API of the web app `computeinfra up` serves, against the running stack."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from computeinfra.testing.stack import free_port
from tests.helpers import REPO, Stack, run_cli, wait_for
from tests.integration.web_helpers import wait_for_web
from tests.unit.test_tasks import make_image

TIMEOUT = 120


@pytest.fixture(scope="module")
def web(stack: Stack) -> Iterator[httpx.Client]:
    wait_for_web(stack)
    with httpx.Client(base_url=stack.web_url, timeout=30) as http:
        yield http


def submit(web: httpx.Client, task: str, payload: dict[str, Any], result_dir: str) -> str:
    response = web.post(
        "/api/jobs", json={"task": task, "payload": payload, "result_dir": result_dir}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def state_of(web: httpx.Client, key: str) -> dict[str, Any]:
    response = web.get(f"/api/jobs/{key}")
    return response.json() if response.status_code == 200 else {}


def wait_state(web: httpx.Client, key: str, state: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := state_of(web, key)) and s["state"] == state and s,
        TIMEOUT,
        f"job {key} to be {state}",
    )


@pytest.fixture
def second_web(stack: Stack) -> Iterator[str]:
    """Another, fresh web process: it knows only what is in Kafka."""
    port = free_port()
    process = subprocess.Popen(
        [str(REPO / ".venv/bin/computeinfra"), "web", "--port", str(port)],
        env={**os.environ, **stack.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), TIMEOUT, "the second web app to listen", interval=0.3)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_states_pending_running_succeeded_seen_by_any_client(
    stack: Stack, web: httpx.Client, second_web: str, tmp_path: Path
) -> None:
    door = tmp_path / "open"
    key = submit(web, "gate", {"path": str(door)}, "web/gate")
    assert state_of(web, key)["state"] in ("pending", "running")
    running = wait_state(web, key, "running")
    assert (running["task"], running["attempt"], running["result_dir"]) == ("gate", 1, "web/gate")
    assert running["block"] in (0, 1) and running["started_at"] >= running["submitted_at"]
    # The state is in Kafka, not in the app that submitted it: a fresh app and the CLI agree.
    assert httpx.get(f"{second_web}/api/jobs/{key}", timeout=30).json()["state"] == "running"
    status = json.loads(run_cli("status", key, env=stack.env, check=True).stdout)
    assert (status["state"], status["status"]["attempt"]) == ("running", 1)
    door.touch()
    done = wait_state(web, key, "succeeded")
    assert done["completion"]["result"] == {"opened": True}
    assert httpx.get(f"{second_web}/api/jobs/{key}", timeout=30).json()["state"] == "succeeded"


def test_events_stream_states_and_the_completion(stack: Stack, web: httpx.Client) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    opened = threading.Event()

    def listen(response: httpx.Response) -> None:
        event = ""
        with contextlib.suppress(httpx.HTTPError):  # the test closes the stream when done
            for line in response.iter_lines():
                opened.set()
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    seen.append((event, json.loads(line.removeprefix("data: "))))

    with (
        httpx.Client(base_url=stack.web_url, timeout=None) as streaming,
        streaming.stream("GET", "/api/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=listen, args=(response,), daemon=True)
        reader.start()
        wait_for(opened.is_set, TIMEOUT, "the stream to open")
        # Longer than COMPUTEINFRA_RUNNING_STATUS_AFTER_MS: a quicker job is never shown
        # running, only pending, then its completion. Long enough to tell its progress.
        key = submit(web, "sleep", {"seconds": 3}, "web/sse")
        wait_for(
            lambda: any(e == "completion" and d["key"] == key for e, d in list(seen)),
            TIMEOUT,
            "the completion event",
        )
    states = [d["state"] for e, d in seen if d["key"] == key]
    assert states[-1] == "succeeded" and "running" in states
    told = [d["progress"] for e, d in seen if d["key"] == key and d.get("progress")]
    assert told and told[-1]["total"] == 3 and told[-1]["message"] == "sleeping", told
    completion = next(d for e, d in seen if e == "completion" and d["key"] == key)
    assert completion["completion"]["status"] == "succeeded"


def test_upload_compress_and_download(stack: Stack, web: httpx.Client, tmp_path: Path) -> None:
    image = make_image(tmp_path / "api.png", (300, 200))
    uploaded = web.post(
        "/api/uploads", files={"files": ("api.png", image.read_bytes(), "image/png")}
    )
    assert uploaded.status_code == 201, uploaded.text
    path = uploaded.json()["files"][0]["path"]
    assert Path(path).is_relative_to(stack.inputs)
    key = submit(web, "image-compression", {"images": [path], "quality": 30}, "web/api-images")
    done = wait_state(web, key, "succeeded")
    (output,) = done["completion"]["outputs"]
    assert output["compressed_bytes"] < output["original_bytes"] and 0 < output["ratio"] < 1
    download = web.get(f"/api/files/{output['path']}", params={"download": "true"})
    assert download.status_code == 200 and download.content[:3] == b"\xff\xd8\xff"  # JPEG
    assert "attachment" in download.headers["content-disposition"]
    listed = web.get("/api/jobs", params={"keys": f"{key},nope"}).json()["jobs"]
    assert [j["key"] for j in listed] == [key]


def test_failures_and_rejections_in_plain_words(web: httpx.Client) -> None:
    failed = wait_state(web, submit(web, "explode", {"message": "it broke"}, "web/x"), "failed")
    assert failed["error"] == {"type": "ValueError", "message": "it broke", "field": None,
                               "traceback": failed["error"]["traceback"]}  # fmt: skip
    missing = web.get(f"/api/jobs/never-{uuid.uuid4().hex}")
    assert missing.status_code == 404 and "no job" in missing.json()["message"]
    bad = web.post(
        "/api/jobs", json={"task": "sleep", "payload": {"seconds": "x"}, "result_dir": "d"}
    )
    assert bad.status_code == 422 and bad.json()["field"] == "payload.seconds"
    assert web.get("/api/nothing-here").json()["message"].startswith("no such page")


def test_stats_metrics_and_the_spec(web: httpx.Client) -> None:
    submit(web, "sleep", {"seconds": 0}, "web/stats")
    stats = wait_for(
        lambda: (s := web.get("/api/stats").json())["analyzer"]["tasks"].get("sleep") and s,
        TIMEOUT,
        "sleep figures",
    )
    assert len(stats["blocks"]) == 2 and stats["analyzer"]["throughput"]["series"]
    text = web.get("/metrics").text
    for family in (
        'computeinfra_jobs_completed_total{status="succeeded",task="sleep"}',
        "computeinfra_queue_wait_seconds_bucket",
        "computeinfra_run_time_seconds_sum",
        "computeinfra_worker_restarts_total",
        "computeinfra_consumer_lag",
        "computeinfra_blocks_busy",
    ):
        assert family in text
    spec = web.get("/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{key}", "/api/events", "/api/stats", "/metrics"} <= set(
        spec["paths"]
    )
