"""A non-Python client (kcat, built on librdkafka) submits a job and reads its completion,
using only what docs/wire-format.md says."""

from __future__ import annotations

import json
import subprocess
import uuid

from computeinfra import Client, Status
from tests.helpers import Stack, wait_for

TIMEOUT = 120


def kcat(*args: str, stdin: str | None = None) -> str:
    # errors="replace": other tests put non-UTF-8 keys on the topic on purpose.
    result = subprocess.run(
        ["kcat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kcat_submits_and_reads_the_completion(stack: Stack, client: Client) -> None:
    bootstrap = stack.settings.bootstrap_servers
    key = f"myjob-{uuid.uuid4().hex[:8]}"
    value = '{"task":"sleep","payload":{"seconds":1},"result_dir":"demo"}'
    kcat(
        "-P",
        "-b",
        bootstrap,
        "-t",
        "pendingJobs",
        "-K:",
        "-X",
        "topic.partitioner=murmur2_random",
        stdin=f"{key}:{value}\n",
    )

    completion = client.job(key).completion(TIMEOUT)
    assert completion.status is Status.SUCCEEDED

    def read_back() -> dict | None:
        out = kcat(
            "-C",
            "-b",
            bootstrap,
            "-t",
            "completedJobs",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-X",
            "isolation.level=read_committed",
            "-f",
            "%k\t%s\n",
        )
        for line in out.splitlines():
            record_key, _, body = line.partition("\t")
            if record_key == key:
                return json.loads(body)
        return None

    event = wait_for(read_back, TIMEOUT, "kcat to read the completion")
    assert event["key"] == key and event["status"] == "succeeded"
    assert {
        "task",
        "result_dir",
        "outputs",
        "error",
        "attempts",
        "submitted_at",
        "started_at",
        "finished_at",
    } <= set(event)
