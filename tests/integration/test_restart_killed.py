"""Start-up on a data directory left by a power cut (issue #17): every process of the
stack, broker included, SIGKILLed while 1,000 mixed jobs run (60 s jobs among them, still
running). Its static members never sent LeaveGroup and its transactions were left open.
A new stack on the same directory becomes ready, and every job submitted before the cut
ends with exactly one completion."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from computeinfra import Client
from computeinfra.testing.stack import dev_stack, kill_all
from tests.chaos import EXPECTED_FAILURES, LONG_JOB_SECONDS, _images, _submit
from tests.helpers import completions_for, run_cli, wait_for

HERE = Path(__file__).resolve().parent
JOBS = 1000
# Deadlines, not timings: bench/ measures how fast a start is.
READY_SECONDS = 90.0
ANSWERED_SECONDS = 400.0


def _env() -> dict[str, str]:
    return {
        "COMPUTEINFRA_TASKS": "sample_tasks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }


def _long_job_running(env: dict[str, str], key: str) -> bool:
    """Asked through the CLI: this test process may be attached to another Ray cluster
    (the session's)."""
    result = run_cli("blocks", "--json", env=env, timeout=60)
    rows = json.loads(result.stdout) if result.returncode == 0 else []
    return any(key == row.get("job") or key in (row.get("jobs") or []) for row in rows)


@pytest.mark.timeout(900)
def test_a_stack_killed_whole_mid_load_starts_again_and_answers_every_job_once(
    tmp_path: Path,
) -> None:
    with dev_stack(tmp_path, 2, _env()) as first, Client(settings=first.settings) as client:
        images = _images(first.inputs / "chaos", 8)
        handles = _submit(first, client, JOBS, images, random.Random(17))
        long_key = handles["2"].key  # the 60 s job
        wait_for(lambda: sum(h.done() for h in handles.values()) >= JOBS * 0.3, 300, "30%")
        wait_for(lambda: _long_job_running(first.env, long_key), 120, "the long job")
        assert not handles["2"].done()
        killed = kill_all(first)
        assert killed >= 5  # broker, up, Ray's own processes, supervisors, workers
    keys = [h.key for h in handles.values()]

    started = time.monotonic()
    with dev_stack(tmp_path, 2, _env(), ready_timeout=READY_SECONDS) as second:
        ready_after = time.monotonic() - started
        bootstrap = second.settings.bootstrap_servers

        def all_answered() -> dict[str, list] | None:
            found = completions_for(bootstrap, keys)
            return found if all(found.get(k) for k in keys) else None

        found = wait_for(all_answered, ANSWERED_SECONDS + LONG_JOB_SECONDS, "every job answered")
        doubled = {key: len(c) for key, c in found.items() if len(c) != 1}
        assert doubled == {}, f"ready after {ready_after:.0f} s"
        failures = {
            key: c[0].error.type
            for key, c in found.items()
            if c[0].error is not None and c[0].error.type not in EXPECTED_FAILURES
        }
        assert failures == {}
        assert found[long_key][0].status.value == "succeeded"
