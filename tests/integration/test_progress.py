"""Progress (issue #14): what a running task says through ``ctx.progress`` reaches
``computeinfra status --json`` and the HTTP API while it runs, and moves on; once the job
completes, no progress is shown. The web app's bar is in test_web_browser."""

from __future__ import annotations

import json
from typing import Any

import httpx

from computeinfra import Client, Status
from computeinfra.client.lookup import find_last
from computeinfra.protocol import JOB_STATUS_TOPIC, JobState, decode_job_status
from tests.helpers import Stack, run_cli, wait_for
from tests.integration.web_helpers import wait_for_web

TIMEOUT = 120


def _status(stack: Stack, key: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        run_cli("status", key, "--json", env=stack.env, check=True).stdout
    )
    return found


def test_a_running_jobs_progress_reaches_status_and_the_http_api(
    stack: Stack, client: Client
) -> None:
    handle = client.submit("sleep", {"seconds": 8}, "progress/sleep")
    first = wait_for(
        lambda: _status(stack, handle.key).get("progress"), TIMEOUT, "status to show progress"
    )
    assert first["total"] == 8 and 0 <= first["done"] < 8 and first["message"] == "sleeping"
    assert first["at"] > 0
    wait_for_web(stack)

    def over_http() -> dict[str, Any] | None:
        view = httpx.get(f"{stack.web_url}/api/jobs/{handle.key}", timeout=30).json()
        said: dict[str, Any] | None = view.get("progress")
        return said if view["state"] == "running" else None

    assert wait_for(over_http, TIMEOUT, "the HTTP API to show progress")["total"] == 8
    later = wait_for(
        lambda: (p := _status(stack, handle.key).get("progress")) and p["done"] > first["done"],
        TIMEOUT,
        "the progress to move on",
    )
    assert later
    assert handle.completion(TIMEOUT).status is Status.SUCCEEDED
    done = _status(stack, handle.key)
    assert done["state"] == "succeeded" and "progress" not in done
    # On the topic too: its terminal status replaced the running ones that told progress.
    last = find_last(stack.settings.bootstrap_servers, JOB_STATUS_TOPIC, handle.key)
    assert last is not None
    final = decode_job_status(last[0])
    assert final.state is JobState.SUCCEEDED and final.progress is None


def test_submit_wait_shows_the_progress_of_its_job(stack: Stack) -> None:
    result = run_cli(
        "submit", "sleep", "--payload", '{"seconds": 4}', "--result-dir", "progress/cli",
        "--wait", "--timeout", "120", env=stack.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "of 4 done: sleeping" in result.stderr, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"
