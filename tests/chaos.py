"""The chaos run shared by the test suite (small) and `bench/chaos.py` (large).

Submits a mix of jobs (quick ones, image compressions, 1 s ones, one of 60 s, tasks that
raise, and poison: a 5 MB result and a result directory that names a file), cancels some
(every other 1 s job, three quick jobs in a hundred, then one unfinished quick job at each
kill), SIGKILLs random workers and supervisors while they run, restarts the broker once,
then checks the promises: one terminal completion per key, each failure of the kind its job
earned, no completion but ``cancelled`` written after a job's cancel was acknowledged,
complete result files, no temporary files, and analyzer counts equal to what was
submitted. The stack must load ``tests/integration/sample_tasks.py``
(``COMPUTEINFRA_TASKS=sample_tasks``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from computeinfra import Client, JobHandle, Status
from computeinfra.cluster.launcher import analyzer_snapshot, block_statuses
from computeinfra.protocol import FailureKind
from computeinfra.testing.stack import DevStack
from tests.helpers import completion_times, completions_for, wait_for

TASKS = ("sleep", "image-compression")
SETTLE_SECONDS = 600
LONG_JOB_SECONDS = 60
# The failures a chaos job may end with: its worker killed too often, or what it earned.
EXPECTED_FAILURES = {
    FailureKind.WORKER_LOST,
    FailureKind.TIME_LIMIT,
    FailureKind.RESULT_TOO_LARGE,
    FailureKind.PATH,
    "ValueError",  # the explode task's own exception
    FailureKind.CANCELLED,  # a cancelled job's reason
}


@dataclass
class ChaosReport:
    jobs: int
    seconds: float = 0.0
    kills: list[str] = field(default_factory=list)
    broker_restarts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    cancels: int = 0  # cancels written (the others found their job completed)
    # When each cancel written was acknowledged (time.time()), by key.
    acknowledged: dict[str, float] = field(default_factory=dict)


def _images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"c{i}.png"
        Image.effect_mandelbrot((256, 192), (-2, -1.2, 1, 1.2), 30 + i).convert("RGB").save(path)
        paths.append(str(path))
    return paths


def _one(client: Client, i: int, images: list[str], rng: random.Random) -> JobHandle:
    if i == 2:
        return client.submit("sleep", {"seconds": LONG_JOB_SECONDS}, "chaos/long")
    if i == 3:
        return client.submit("big-result", {"size": 5_000_000}, "chaos/big")
    if i == 4:
        return client.submit("sleep", {"seconds": 0}, "chaos/a-file")
    if i % 10 == 0:
        payload = {"images": [rng.choice(images)], "quality": rng.randint(20, 80)}
        return client.submit("image-compression", payload, f"chaos/{i}")
    if i % 100 == 1:
        return client.submit("sleep", {"seconds": 1}, "chaos/s")
    if i % 50 == 5:
        return client.submit("explode", {"message": "chaos"}, "chaos/x")
    return client.submit("sleep", {"seconds": rng.uniform(0, 0.01)}, "chaos/s")


def _submit(
    stack: DevStack, client: Client, jobs: int, images: list[str], rng: random.Random
) -> dict[str, JobHandle]:
    """The jobs by role: ``big`` and ``path`` are the poison, the rest by key."""
    (stack.results / "chaos").mkdir(parents=True, exist_ok=True)
    (stack.results / "chaos" / "a-file").write_text("a file where a folder is asked for")
    handles = {str(i): _one(client, i, images, rng) for i in range(jobs)}
    handles["big"], handles["path"] = handles.pop("3"), handles.pop("4")
    return handles


def _cancel(handles: list[JobHandle], report: ChaosReport) -> None:
    """Cancel ``handles``: each gets exactly one completion (``cancelled``, or what it
    earned if it ended first); one acknowledged gets no other completion after."""
    for handle in handles:
        if handle.cancel("chaos").requested:
            report.acknowledged[handle.key] = time.time()
    report.cancels = len(report.acknowledged)


def _cancel_some(by_role: dict[str, JobHandle], report: ChaosReport) -> None:
    """Every other 1 s job and three quick jobs in a hundred, as they run or wait."""
    chosen = [
        h for role, h in by_role.items() if role.isdigit() and int(role) % 200 in (101, 7, 57)
    ]
    _cancel(chosen, report)


def _cancel_one(by_role: dict[str, JobHandle], rng: random.Random, report: ChaosReport) -> None:
    """One quick job not finished yet: never the 60 s job or a 1 s job left to run (the
    mix must still end as it earned), nor a poison one (those must earn their failure)."""
    left = [
        h
        for role, h in by_role.items()
        if role.isdigit() and role != "2" and int(role) % 100 != 1 and not h.done()
    ]
    if left:
        _cancel([rng.choice(left)], report)


def _kill_one(stack: DevStack, rng: random.Random) -> str | None:
    blocks = [b for b in block_statuses(stack.settings) if b.get("state") != "unreachable"]
    targets = [("worker", b["worker_pid"]) for b in blocks if b.get("worker_pid")]
    targets += [("supervisor", b["supervisor_pid"]) for b in blocks if b.get("supervisor_pid")]
    if not targets:
        return None
    role, pid = rng.choice(targets)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return f"{role}:{pid}"


def _counts(stack: DevStack) -> dict[str, dict[str, int]]:
    snapshot = analyzer_snapshot(stack.settings)
    return {task: snapshot["tasks"].get(task, {}) for task in TASKS}


def run_chaos(stack: DevStack, client: Client, jobs: int, kills: int, seed: int = 7) -> ChaosReport:
    rng = random.Random(seed)
    report = ChaosReport(jobs)
    images = _images(stack.inputs / "chaos", 8)
    before = _counts(stack)
    start = time.monotonic()
    by_role = _submit(stack, client, jobs, images, rng)
    handles = list(by_role.values())
    _cancel_some(by_role, report)
    events = sorted([(k + 1) / (kills + 2) for k in range(kills)] + [0.5])
    broker_at = events.index(0.5)
    deadline = start + SETTLE_SECONDS
    for index, fraction in enumerate(events):
        wait_for(
            lambda f=fraction: sum(h.done() for h in handles) >= f * jobs,
            max(deadline - time.monotonic(), 1),
            f"{fraction:.0%} of the chaos jobs",
        )
        if index == broker_at:
            stack.broker.stop()
            stack.broker.start()
            report.broker_restarts += 1
        else:
            killed = _kill_one(stack, rng)
            if killed:
                report.kills.append(killed)
            _cancel_one(by_role, rng, report)
    for handle in handles:
        handle.completion(max(deadline - time.monotonic(), 1))
    report.seconds = time.monotonic() - start
    _check(stack, handles, before, report)
    _check_poison(by_role, report)
    _check_cancels(stack, report)
    return report


def _check_cancels(stack: DevStack, report: ChaosReport) -> None:
    """No completion but ``cancelled`` was written after a job's cancel was acknowledged
    (a record's time is when its block wrote it, before its transaction committed)."""
    found = completion_times(stack.settings.bootstrap_servers, report.acknowledged)
    for key, completions in found.items():
        for completion, written in completions:
            late = written >= report.acknowledged[key]
            if completion.status is not Status.CANCELLED and late:
                report.problems.append(f"{key}: {completion.status} written after its cancel")


def _check_poison(by_role: dict[str, JobHandle], report: ChaosReport) -> None:
    expected = {"big": FailureKind.RESULT_TOO_LARGE, "path": FailureKind.PATH}
    for role, kind in expected.items():
        completion = by_role[role].completion()
        error = completion.error.type if completion.error else None
        # A kill may also end it (WorkerLost), but it never succeeds.
        if completion.status is Status.SUCCEEDED or error not in (kind, FailureKind.WORKER_LOST):
            report.problems.append(f"{role} job: {completion.status} {error}, not {kind}")


def _check(stack: DevStack, handles: list[JobHandle], before: dict, report: ChaosReport) -> None:
    found = completions_for(stack.settings.bootstrap_servers, [h.key for h in handles])
    for key, completions in found.items():
        if len(completions) != 1:
            report.problems.append(f"{key}: {len(completions)} completions")
            continue
        (completion,) = completions
        report.statuses[completion.status.value] += 1
        if completion.status is Status.SUCCEEDED:
            _check_outputs(stack, completion.outputs, report)
        elif completion.error is None or completion.error.type not in EXPECTED_FAILURES:
            report.problems.append(f"{key}: unexpected {completion.status}: {completion.error}")
    temporaries = [str(p) for p in stack.results.rglob("*.tmp")]
    if temporaries:
        report.problems.append(f"temporary files left: {temporaries[:5]}")
    _check_analyzer(stack, handles, before, report)


def _check_outputs(stack: DevStack, outputs: list, report: ChaosReport) -> None:
    for output in outputs:
        path = stack.results / output.path
        if not path.is_file() or path.stat().st_size != output.bytes:
            report.problems.append(f"{output.path}: missing or incomplete")
            continue
        with Image.open(path) as image:
            image.verify()


def _check_analyzer(
    stack: DevStack, handles: list[JobHandle], before: dict, report: ChaosReport
) -> None:
    submitted = Counter(h.completion().task for h in handles)

    def settled() -> dict | None:
        now = _counts(stack)
        ok = all(
            now[t].get("requests_read", 0) - before[t].get("requests_read", 0) == submitted[t]
            and now[t].get("in_flight", 0) == 0
            for t in TASKS
        )
        return now if ok else None

    try:
        wait_for(settled, 120, "the analyzer to count every chaos job", interval=1)
    except AssertionError:
        report.problems.append(
            f"analyzer counts {json.dumps(_counts(stack))} do not match {dict(submitted)}"
        )
