"""Many jobs from one `submit`, and `watch` lines, as real CLI subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from tests.helpers import REPO, Stack, completions_for, run_cli


def test_repeat_with_wait_shows_progress_then_a_summary(stack: Stack) -> None:
    prefix = f"rep-{uuid.uuid4().hex[:8]}"
    result = run_cli(
        "submit", "sleep", "--payload", '{"seconds": 0}', "--repeat", "4", "--key", prefix,
        "--result-dir", "cli/repeat", "--wait", "--timeout", "120",
        env={**stack.env, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "4/4" in result.stderr  # the progress bar, finished
    assert "4 jobs: 4 succeeded, 0 failed, 0 rejected" in result.stdout
    keys = [f"{prefix}-{i}" for i in range(4)]
    assert all(key in result.stdout for key in keys)  # the summary table
    assert all(
        len(found) == 1
        for found in completions_for(stack.settings.bootstrap_servers, keys).values()
    )


def test_jsonl_payloads_one_job_per_line_and_exit_1_when_one_fails(
    stack: Stack, tmp_path: Path
) -> None:
    lines = tmp_path / "jobs.jsonl"
    lines.write_text('{"seconds": 0}\n\n{"seconds": 0.1}\n{"seconds": -5}\n')
    result = run_cli(
        "submit", "sleep", "--payload", f"@{lines}", "--result-dir", "cli/jsonl", "--wait",
        "--timeout", "120", env={**stack.env, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "3 jobs: 2 succeeded, 0 failed, 1 rejected" in result.stdout
    assert "greater than or equal to 0" in result.stdout


def test_many_without_wait_prints_one_key_per_job(stack: Stack, tmp_path: Path) -> None:
    lines = tmp_path / "two.jsonl"
    lines.write_text('{"seconds": 0}\n{"seconds": 0}\n')
    result = run_cli(
        "submit", "sleep", "--payload", f"@{lines}", "--result-dir", "cli/keys",
        env=stack.env, check=True,
    )  # fmt: skip
    assert len(set(result.stdout.split())) == 2


def test_a_bad_jsonl_line_is_named(stack: Stack, tmp_path: Path) -> None:
    lines = tmp_path / "bad.jsonl"
    lines.write_text('{"seconds": 0}\n{oops\n')
    wide = {**stack.env, "COLUMNS": "300"}  # rich wraps the message at the terminal width
    result = run_cli("submit", "sleep", "--payload", f"@{lines}", env=wide)
    assert result.returncode == 2
    assert "bad.jsonl line 2 is not valid JSON" in result.stderr


def test_watch_prints_a_readable_line_per_completion(stack: Stack) -> None:
    watcher = subprocess.Popen(
        [str(REPO / ".venv/bin/computeinfra"), "watch", "--count", "1"],
        env={**os.environ, **stack.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "watching" in watcher.stderr.readline()
        key = run_cli(
            "submit", "sleep", "--payload", '{"seconds": 0}', "--result-dir", "cli/watched",
            env=stack.env, check=True,
        ).stdout.strip()  # fmt: skip
        out, _err = watcher.communicate(timeout=120)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    (line,) = out.splitlines()
    assert f"✓ {key}  sleep  succeeded in " in line and "→ cli/watched" in line
    assert not line.lstrip().startswith("{")
    json_line = run_cli("watch", "--json", "--from-beginning", "--count", "1", env=stack.env)
    assert json.loads(json_line.stdout)["status"] in (
        "succeeded",
        "failed",
        "rejected",
        "cancelled",
    )
