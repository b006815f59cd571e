"""User middleware on a real stack: a hook that raises fails its job alone, and never stops
a block; a consume thread that dies is restarted and says why."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from computeinfra import Client, Status
from computeinfra.cluster.launcher import block_statuses
from computeinfra.protocol import FailureKind
from computeinfra.testing.stack import DevStack
from tests.helpers import completions_for, wait_for
from tests.integration.web_helpers import wait_for_web

from .sample_middleware import HOOK_FAIL_PREFIX

TIMEOUT = 120


def _flags(stack: DevStack) -> Path:
    return stack.root / "flags"


def _run_jobs(client: Client, count: int, poison: int | None = None) -> dict[str, Any]:
    keys = [f"{HOOK_FAIL_PREFIX if i == poison else 'mw-'}{uuid.uuid4().hex}" for i in range(count)]
    handles = [client.submit("sleep", {"seconds": 0}, result_dir="mw", key=key) for key in keys]
    return {h.key: h.completion(timeout=TIMEOUT) for h in handles}


def test_a_raising_hook_fails_only_its_job(stack: DevStack, client: Client) -> None:
    results = _run_jobs(client, 50, poison=17)
    failed = [c for c in results.values() if c.status is not Status.SUCCEEDED]
    assert len(failed) == 1 and failed[0].key.startswith(HOOK_FAIL_PREFIX)
    assert failed[0].status is Status.FAILED
    assert failed[0].error is not None and failed[0].error.type == FailureKind.MIDDLEWARE
    assert "SampleHooks.before_dispatch" in failed[0].error.message
    assert failed[0].attempts == 0  # it never reached a worker
    counts = completions_for(stack.settings.bootstrap_servers, results)
    assert all(len(found) == 1 for found in counts.values())  # nothing doubled
    blocks = block_statuses(stack.settings)
    assert sum(b.get("hook_errors", 0) for b in blocks) >= 1


def test_an_idle_hook_that_raises_leaves_every_block_consuming(
    stack: DevStack, client: Client
) -> None:
    flag = _flags(stack) / "idle-raises"
    flag.touch()
    try:
        wait_for(
            lambda: (
                all(b.get("hook_errors", 0) >= 3 for b in block_statuses(stack.settings)) or None
            ),
            TIMEOUT,
            "every block's idle hook to have raised",
        )
        results = _run_jobs(client, 20)
        assert all(c.status is Status.SUCCEEDED for c in results.values())
    finally:
        flag.unlink()


def test_a_dead_consume_thread_is_restarted_and_says_why(stack: DevStack, client: Client) -> None:
    before = {b["name"]: b.get("restarts", 0) for b in block_statuses(stack.settings)}

    def all_restarted() -> list[dict[str, Any]] | None:
        rows = block_statuses(stack.settings)
        return rows if all(b.get("restarts", 0) > before[b["name"]] for b in rows) else None

    (_flags(stack) / "die-once").touch()
    try:
        restarted = wait_for(
            all_restarted, TIMEOUT, "every block's consume thread to die and start again"
        )
    finally:
        (_flags(stack) / "die-once").unlink()
    assert all("SystemExit" in (b.get("error") or "") for b in restarted)
    # /metrics says why, per block (its figures are refreshed on a timer: wait for them).
    lines = [
        f'computeinfra_block_last_error{{block="{row["name"]}",error="SystemExit'
        for row in restarted
    ]

    def said() -> bool:
        text = httpx.get(f"{stack.web_url}/metrics", timeout=30).text
        return all(line in text for line in lines)

    wait_for_web(stack)
    wait_for(said, TIMEOUT, "/metrics to say why each block restarted")
    results = _run_jobs(client, 20)
    assert all(c.status is Status.SUCCEEDED for c in results.values())
