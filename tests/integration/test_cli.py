"""The `computeinfra` command line, run as real subprocesses against the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests.helpers import REPO, Stack, run_cli, wait_for
from tests.unit.test_tasks import make_image

COMMANDS = [
    "up",
    "kafka",
    "kafka start",
    "kafka stop",
    "kafka status",
    "kafka reset",
    "submit",
    "watch",
    "status",
    "stats",
    "tasks",
    "blocks",
    "schema",
    "web",
    "doctor",
]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_works_everywhere(command: str) -> None:
    result = run_cli(*command.split(), "--help", env={})
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_submit_wait_prints_the_succeeded_completion(stack: Stack) -> None:
    image = make_image(stack.inputs / "cli.png", (400, 300))
    result = run_cli(
        "submit",
        "image-compression",
        "--payload",
        json.dumps({"images": [str(image)], "quality": 50}),
        "--result-dir",
        "cli/demo",
        "--wait",
        "--timeout",
        "120",
        env=stack.env,
    )
    assert result.returncode == 0, result.stderr
    completion = json.loads(result.stdout)
    assert completion["status"] == "succeeded"
    output = stack.results / completion["outputs"][0]["path"]
    assert output.exists() and output.parent == stack.results / "cli" / "demo"


def test_submit_wait_exits_nonzero_when_the_job_fails(stack: Stack) -> None:
    result = run_cli(
        "submit",
        "explode",
        "--payload",
        '{"message": "nope"}',
        "--result-dir",
        "cli/x",
        "--wait",
        "--timeout",
        "120",
        env=stack.env,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["message"] == "nope"


def test_submit_takes_a_time_limit_and_attempts_for_the_job(stack: Stack) -> None:
    """A request's own limit, from the command line: one attempt of 1 s, where the task's
    defaults are 3 attempts of an hour."""
    result = run_cli(
        "submit", "sleep", "--payload", '{"seconds": 60}', "--result-dir", "cli/limits",
        "--time-limit", "1", "--max-attempts", "1", "--wait", "--timeout", "120",
        env=stack.env,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    completion = json.loads(result.stdout)
    assert completion["error"]["type"] == "TimeLimitExceeded" and completion["attempts"] == 1


def test_submit_without_wait_prints_the_key_then_status_finds_it(stack: Stack, tmp_path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"seconds": 0}')
    key = f"cli-{uuid.uuid4().hex[:8]}"
    result = run_cli(
        "submit",
        "sleep",
        "--payload",
        f"@{payload}",
        "--result-dir",
        "cli/k",
        "--key",
        key,
        env=stack.env,
        check=True,
    )
    assert result.stdout.strip() == key

    def succeeded() -> dict | None:
        out = run_cli("status", key, env=stack.env)
        state = json.loads(out.stdout) if out.stdout else {}
        return state if state.get("state") == "succeeded" else None

    state = wait_for(succeeded, 120, "status to report success", interval=0.5)
    assert state["completion"]["key"] == key


def test_status_of_an_unknown_key(stack: Stack) -> None:
    result = run_cli("status", "never-submitted-" + uuid.uuid4().hex, env=stack.env)
    assert result.returncode == 1
    assert json.loads(result.stdout)["state"] == "unknown"


def test_watch_prints_a_line_per_completion(stack: Stack) -> None:
    env = {**stack.env}
    watcher = subprocess.Popen(
        [str(REPO / ".venv/bin/computeinfra"), "watch", "--json", "--count", "2"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # watch starts at the end of the topic; submit only once it says it is watching.
        assert "watching" in watcher.stderr.readline()
        keys = set()
        for _ in range(2):
            keys.add(
                run_cli(
                    "submit",
                    "sleep",
                    "--payload",
                    '{"seconds": 0}',
                    "--result-dir",
                    "cli/w",
                    env=env,
                    check=True,
                ).stdout.strip()
            )
        out, err = watcher.communicate(timeout=120)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2, err
    assert {line["status"] for line in lines} == {"succeeded"}


def test_watch_human_lines(stack: Stack) -> None:
    result = run_cli("watch", "--from-beginning", "--count", "1", env=stack.env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert any(word in result.stdout for word in ("succeeded", "failed", "rejected", "cancelled"))


def test_tasks_lists_builtins_and_user_tasks_with_schemas(stack: Stack) -> None:
    tasks = json.loads(run_cli("tasks", "--json", env=stack.env, check=True).stdout)
    assert {"sleep", "word-count", "image-compression", "explode"} <= set(tasks)
    assert tasks["image-compression"]["payload"]["properties"]["quality"]["maximum"] == 95


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["submit", "sleep", "--payload", "{not json"], "--payload is not valid JSON"),
        (["submit", "sleep", "--payload", "[1]"], "must be a JSON object"),
        (["submit", "sleep", "--payload", "@/no/such/file.json"], "cannot read payload file"),
        (["submit", "sleep", "--time-limit", "0"], "time_limit: Input should be greater than 0"),
    ],
)
def test_bad_cli_input_is_a_readable_error(stack: Stack, args: list[str], words: str) -> None:
    result = run_cli(*args, env=stack.env)
    assert result.returncode == 2
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_kafka_is_a_readable_error(tmp_path) -> None:
    env = {"COMPUTEINFRA_BOOTSTRAP": "127.0.0.1:1", "COMPUTEINFRA_HOME": str(tmp_path)}
    result = run_cli("submit", "sleep", "--payload", '{"seconds": 0}', env=env)
    assert result.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_blocks_without_a_cluster_is_a_readable_error(tmp_path) -> None:
    env = {"COMPUTEINFRA_HOME": str(tmp_path), "RAY_ADDRESS": ""}
    result = run_cli("blocks", env=env)
    assert result.returncode == 2
    assert "no running cluster found" in result.stderr
