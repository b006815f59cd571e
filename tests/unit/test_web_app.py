"""The web app's request checks, uploads and /metrics text, in process (no Kafka, no Ray)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from computeinfra.config import Settings
from computeinfra.web.app import create_app
from computeinfra.web.config import WebSettings
from computeinfra.web.figures import ClusterFigures
from computeinfra.web.metrics import exposition
from computeinfra.web.uploads import safe_name

with warnings.catch_warnings():  # Starlette asks for httpx2, which is not in our dependencies
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SNAPSHOT: dict[str, Any] = {
    "tasks": {
        "sleep": {
            "submitted": 3, "succeeded": 2, "failed": 1, "rejected": 0, "in_flight": 0,
            "attempts": 4,
            "queue_wait_histogram": {"buckets": [[0.1, 1], [1.0, 3]], "sum": 1.5, "count": 3},
            "run_time_histogram": {"buckets": [[0.1, 0], [1.0, 2]], "sum": 1.2, "count": 3},
        }
    },
    "worker_restarts": {"total": 2, "by_block": {"1": 2}},
    "backlog": 5,
    "throughput": {"per_second": 0.5},
}  # fmt: skip


@pytest.fixture
def app(tmp_path: Path) -> TestClient:
    (tmp_path / "inputs").mkdir()
    core = Settings(
        bootstrap="127.0.0.1:1",
        home=tmp_path / "home",  # no cluster state here, even if `make run` runs elsewhere
        results_root=tmp_path / "results",
        input_roots=(tmp_path / "inputs",),
    )
    web = WebSettings(core=core, uploads_root=tmp_path / "inputs" / "uploads", max_upload_bytes=64)
    return TestClient(create_app(web, follow=False))


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"task": "sleep", "payload": {"seconds": -1}, "result_dir": "d"},
            "payload.seconds",
            "greater than",
        ),
        (
            {"task": "sleep", "payload": {"seconds": 1}, "result_dir": "../up"},
            "result_dir",
            "leaves",
        ),
        ({"task": "nope", "payload": {}, "result_dir": "d"}, "task", "unknown task"),
        ({"task": "sleep", "payload": {"seconds": 1}}, "result_dir", "required"),
        (
            {
                "task": "image-compression",
                "payload": {"images": ["/etc/passwd"], "quality": 5},
                "result_dir": "d",
            },
            "payload.images.0",
            "outside the input roots",
        ),
    ],
)
def test_an_invalid_submission_is_a_422_naming_the_field(
    app: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    response = app.post("/api/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert words in response.json()["message"]


def test_uploads_are_confined_and_bounded(app: TestClient, tmp_path: Path) -> None:
    response = app.post("/api/uploads", files={"files": ("../../evil name.png", b"x" * 10)})
    assert response.status_code == 201, response.text
    (stored,) = response.json()["files"]
    assert Path(stored["path"]).is_relative_to(tmp_path / "inputs" / "uploads")
    assert stored["name"] == "evil_name.png" and stored["bytes"] == 10
    too_big = app.post("/api/uploads", files={"files": ("big.bin", b"x" * 65)})
    assert too_big.status_code == 413 and "larger than" in too_big.json()["message"]


def test_downloads_stay_inside_the_results_root(app: TestClient, tmp_path: Path) -> None:
    (tmp_path / "results" / "d").mkdir(parents=True)
    (tmp_path / "results" / "d" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("no")
    assert app.get("/api/files/d/a.txt").text == "hello"
    assert app.get("/api/files/d/../../secret.txt").status_code == 404
    assert app.get("/api/files/%2e%2e/secret.txt").status_code == 404


def test_a_download_through_a_symlink_loop_is_refused(app: TestClient, tmp_path: Path) -> None:
    """``loop/../out/secret.txt`` resolved to ``<results>/out/secret.txt`` and was served
    from wherever ``out`` points (issue #15's change 21 review; on ``0452639`` too)."""
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("no")
    (results / "loop").symlink_to(results / "loop")
    (results / "out").symlink_to(tmp_path / "outside")
    assert app.get("/api/files/out/secret.txt").status_code == 404
    assert app.get("/api/files/loop/%2e%2e/out/secret.txt").status_code == 404


def test_safe_names() -> None:
    assert safe_name("C:\\photos\\cat.jpg") == "cat.jpg"
    assert safe_name("..") == "upload"
    assert safe_name(".bashrc") == "bashrc"


def test_metrics_text_from_the_analyzer_figures() -> None:
    figures = ClusterFigures(Settings(), fetch=lambda _s: {"analyzer": SNAPSHOT, "blocks": [
        {"block": 0, "job": "k", "restarts": 1, "hook_errors": 4},
        {"block": 1, "job": None, "state": "dead", "error": "SystemExit"}]})  # fmt: skip
    text = exposition(figures).decode()
    assert 'computeinfra_jobs_completed_total{status="failed",task="sleep"} 1.0' in text
    assert 'computeinfra_queue_wait_seconds_bucket{le="1.0",task="sleep"} 3.0' in text
    assert 'computeinfra_queue_wait_seconds_count{task="sleep"} 3.0' in text
    assert 'computeinfra_worker_restarts_total{block="1"} 2.0' in text
    assert "computeinfra_consumer_lag 5.0" in text
    assert "computeinfra_blocks_busy 1.0" in text
    assert 'computeinfra_block_restarts_total{block="0"} 1.0' in text
    assert 'computeinfra_middleware_errors_total{block="0"} 4.0' in text
    assert 'computeinfra_block_dead{block="1"} 1.0' in text
    assert 'computeinfra_block_last_error{block="1",error="SystemExit"} 1.0' in text
    assert 'computeinfra_block_last_error{block="0"' not in text


def test_stats_without_ray_is_a_503_saying_so(
    app: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    response = app.get("/api/stats")
    assert response.status_code == 503
    assert "cluster" in response.json()["message"]
