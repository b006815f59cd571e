"""The chaos run shared by the test suite (small) and `bench/chaos.py` (large).

Submits a mix of jobs, SIGKILLs random workers and supervisors while they run, restarts the
broker once, then checks the promises: one terminal completion per key, complete result
files, no temporary files, and analyzer counts equal to what was submitted.
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
from computeinfra.testing.stack import DevStack
from tests.helpers import completions_for, wait_for

TASKS = ("sleep", "image-compression")
SETTLE_SECONDS = 400


@dataclass
class ChaosReport:
    jobs: int
    seconds: float = 0.0
    kills: list[str] = field(default_factory=list)
    broker_restarts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"c{i}.png"
        Image.effect_mandelbrot((256, 192), (-2, -1.2, 1, 1.2), 30 + i).convert("RGB").save(path)
        paths.append(str(path))
    return paths


def _submit(client: Client, jobs: int, images: list[str], rng: random.Random) -> list[JobHandle]:
    handles = []
    for i in range(jobs):
        if i % 10 == 0:
            payload = {"images": [rng.choice(images)], "quality": rng.randint(20, 80)}
            handles.append(client.submit("image-compression", payload, f"chaos/{i}"))
        else:
            handles.append(client.submit("sleep", {"seconds": rng.uniform(0, 0.03)}, "chaos/s"))
    return handles


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
    handles = _submit(client, jobs, images, rng)
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
    for handle in handles:
        handle.completion(max(deadline - time.monotonic(), 1))
    report.seconds = time.monotonic() - start
    _check(stack, handles, before, report)
    return report


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
        elif completion.error is None or completion.error.type not in (
            "WorkerLost",
            "TimeLimitExceeded",
        ):
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
            now[t].get("submitted", 0) - before[t].get("submitted", 0) == submitted[t]
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
