"""A long job holds back no other job (issue #13): on 2 blocks of one worker each, jobs
that land behind a long one on its block's partitions are handed over to the other block
and complete while it runs; the long job itself runs once.

On the code before this (one worker per block, answers in consumed order), the short jobs
on the long job's block all waited for it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from computeinfra import Client, Status
from computeinfra.block.supervisor import Supervisor
from computeinfra.cluster.launcher import block_statuses
from computeinfra.tasks.registry import load_registry
from computeinfra.testing.stack import DevStack
from tests.helpers import completions_for, wait_for
from tests.integration.test_supervisor_rejoin import InProcessWorker

LONG_SECONDS = 45
TIMEOUT = 120


def _running(stack: DevStack, key: str) -> bool:
    rows = block_statuses(stack.settings)
    return any(key == row.get("job") or key in (row.get("jobs") or []) for row in rows)


def test_short_jobs_complete_while_a_long_job_runs_and_it_runs_once(
    stack: DevStack, client: Client
) -> None:
    long = client.submit("sleep", {"seconds": LONG_SECONDS}, result_dir="long-jobs")
    wait_for(lambda: _running(stack, long.key), 60, "the long job to start", interval=0.5)
    short = [
        client.submit("sleep", {"seconds": 0.1}, result_dir="long-jobs/short") for _ in range(30)
    ]
    done = [handle.result(TIMEOUT) for handle in short]
    assert all(c.status is Status.SUCCEEDED for c in done)
    # On failure, say what each block did, for whoever reads the CI log.
    blocks = [
        {k: row.get(k) for k in ("block", "jobs", "queued", "handed_over", "partitions", "state")}
        for row in block_statuses(stack.settings)
    ]
    by_block = sorted((c.block, c.attempts) for c in done)
    assert not long.done(), f"the short jobs waited for the long one: {blocks}, {by_block}"
    final = long.result(LONG_SECONDS + TIMEOUT)
    assert (final.status, final.attempts) == (Status.SUCCEEDED, 1)
    found = completions_for(stack.settings.bootstrap_servers, [long.key, *(h.key for h in short)])
    assert {key: len(found[key]) for key in found} == {key: 1 for key in found}
    assert len(found) == 31


def test_a_block_joining_while_a_long_job_runs_gets_partitions_at_once(
    stack: DevStack, client: Client
) -> None:
    """The busy block keeps polling, so the group's rebalance completes while its job runs
    (before, it did not poll until its batch ended, and the joining block sat idle)."""
    long = client.submit("sleep", {"seconds": LONG_SECONDS}, result_dir="long-jobs")
    wait_for(lambda: _running(stack, long.key), 60, "the long job to start", interval=0.5)
    name = f"joiner-{uuid.uuid4().hex[:8]}"
    settings = replace(stack.settings, task_modules=())
    joiner = Supervisor(
        settings,
        99,
        [InProcessWorker(settings)],
        member_id=name,
        registry=load_registry(()),
    )
    joiner.start()
    try:
        wait_for(lambda: joiner.status()["partitions"], 30, "the joining block's partitions")
        assert not long.done(), "the group rebalanced only once the long job had ended"
    finally:
        joiner.stop(10)
    final = long.result(LONG_SECONDS + TIMEOUT)
    assert final.status is Status.SUCCEEDED
    found = completions_for(stack.settings.bootstrap_servers, [long.key])
    assert len(found[long.key]) == 1


def test_calls_queued_at_a_ray_worker_behind_a_long_one_are_taken_back_unrun(
    stack: DevStack,
) -> None:
    """What a lane relies on to take jobs back: the worker actor, asked on its control
    thread, stops the running call after its running job and skips the calls queued
    behind it, while that job runs on. (``ray.cancel`` could not: Ray drops a queued call
    only once the one ahead ends, and cannot stop a running call between its jobs.)"""
    import ray

    from computeinfra.block.jobs import Assignment
    from computeinfra.block.pipeline import AttemptQueue
    from computeinfra.cluster.actors import WorkerActor, _RayWorkerPort
    from computeinfra.cluster.connect import connect
    from computeinfra.tasks.sleep import SleepPayload

    connect(stack.settings)
    # No CPU of its own: the blocks' workers hold every CPU the test cluster has.
    handle = WorkerActor.options(name=f"take-back-{uuid.uuid4().hex[:8]}", num_cpus=0).remote(
        stack.settings, 0
    )
    try:
        ray.get(handle.describe.remote(), timeout=120)  # up: calls now go to its process

        class Recording(_RayWorkerPort):
            def __init__(self, handle: Any) -> None:
                super().__init__(handle)
                self.calls: list[Any] = []

            def submit(self, assignments: list[Assignment]) -> Any:
                self.calls.append(super().submit(assignments))
                return self.calls[-1]

        port = Recording(handle)
        queue = AttemptQueue(port)
        jobs = [
            Assignment(key, "sleep", SleepPayload(seconds=seconds), "tb", None)
            for key, seconds in (("long", 20.0), ("b", 0.0), ("c", 0.0))
        ]
        queue.send(jobs[:2])  # b shares the long one's call, as quick jobs do
        queue.send(jobs[2:])
        wait_for(
            lambda: _last_call(handle) == port.calls[0].call_id,
            60,
            "the long call to begin",
            interval=0.1,
        )
        assert [a.key for a in queue.take_back()] == ["b", "c"]
        assert not port.calls[0].wait(0)  # taken back while the long one still runs
        assert port.calls[1].outcome(timeout=60) == []  # c never ran
        attempt = queue.collect()
        assert attempt.assignment.key == "long"
        assert getattr(attempt.result, "status", None) is Status.SUCCEEDED
        assert len(queue) == 0 and len(port.calls[0].outcome(timeout=0)) == 1  # b never ran
    finally:
        ray.kill(handle, no_restart=True)


def _last_call(handle: Any) -> int:
    import ray

    described: dict[str, Any] = ray.get(handle.describe.remote(), timeout=30)
    return int(described["last_call"])


def test_a_request_may_raise_its_tasks_limit_and_a_task_may_have_none(
    stack: DevStack, client: Client
) -> None:
    """Issue #13, long jobs: a request asks for more than its task's default limit (up to
    the task's max_time_limit), and a task declared with ``time_limit=None`` is never
    stopped by a limit. The default alone stops the same job."""
    stopped = client.submit("short-limit", {"seconds": 3}, "long-jobs/limits")
    raised = client.submit("short-limit", {"seconds": 3}, "long-jobs/limits", time_limit=20)
    free = client.submit("unlimited", {"seconds": 3}, "long-jobs/limits")
    done = stopped.completion(TIMEOUT)
    assert done.status is Status.FAILED and done.error is not None
    assert done.error.type == "TimeLimitExceeded" and "1 s" in done.error.message
    for handle in (raised, free):
        completion = handle.completion(TIMEOUT)
        assert (completion.status, completion.attempts) == (Status.SUCCEEDED, 1), completion
        assert completion.result == {"slept": 3.0}
