"""Where a real-work run's wall time goes, block by block (issue #15).

Runs image jobs on a stack of its own (a local broker, `computeinfra up --blocks 2`, as
`make profile` does), optionally after no-op jobs that warm it, and reads each job's own
start and end from its completion. It prints, for each block, how many jobs it ran, how
long its worker was busy and when it finished; and, every 0.1 s of the run, how many
workers were busy. A run whose workers are busy to the end is CPU-bound; one block
finishing long before the other is work the idle block could have taken.

    .venv/bin/python bench/balance.py --images 400 --warm 0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from profile import _stack
from typing import Any

import psutil
from realwork import QUALITY, make_images
from report import save

from computeinfra import Client, Completion
from computeinfra.cluster.launcher import block_statuses

BUCKET_SECONDS = 0.1
GAP_SECONDS = 0.03
TIMEOUT_SECONDS = 600.0


def _run(client: Client, images: list[str]) -> tuple[float, list[Completion]]:
    """Submit one job per image, wait for every completion; the start and the completions."""
    start = time.time()
    handles = [
        client.submit("image-compression", {"images": [p], "quality": QUALITY}, "bench-balance")
        for p in images
    ]
    return start, [handle.completion(timeout=TIMEOUT_SECONDS) for handle in handles]


def _cpu(stack: Any) -> dict[str, float]:
    """CPU seconds so far of each block's supervisor and workers."""
    found: dict[str, float] = {}
    for row in block_statuses(stack.settings):
        pids = {"supervisor": row["supervisor_pid"]}
        pids.update({f"worker {i}": pid for i, pid in enumerate(row.get("worker_pids") or [])})
        for name, pid in pids.items():
            times = psutil.Process(pid).cpu_times()
            found[f"block {row.get('block')} {name}"] = times.user + times.system
    return found


def _gaps(mine: list[Completion], start: float) -> list[list[float]]:
    """Where a block's workers all sat idle for over ``GAP_SECONDS`` between its first job and
    its last: [from, length] in seconds since the first submit."""
    spans = sorted((c.started_at or 0.0, c.finished_at) for c in mine)
    gaps, reach = [], spans[0][1]
    for began, ended in spans[1:]:
        if began - reach > GAP_SECONDS:
            gaps.append([round(reach - start, 3), round(began - reach, 3)])
        reach = max(reach, ended)
    return gaps


def report(start: float, done: list[Completion], cpu: dict[str, float]) -> dict[str, Any]:
    end = max(c.finished_at for c in done)
    blocks: dict[str, Any] = {}
    for block in sorted({c.block for c in done}, key=str):
        mine = [c for c in done if c.block == block and c.started_at is not None]
        if not mine:  # answered without running (rejected, say): nothing to time
            continue
        blocks[str(block)] = {
            "jobs": len(mine),
            "busy_s": sum(c.finished_at - (c.started_at or 0.0) for c in mine),
            "first_start_s": min((c.started_at or 0.0) for c in mine) - start,
            "last_end_s": max(c.finished_at for c in mine) - start,
            "gaps": _gaps(mine, start),
        }
    buckets = []
    for i in range(int((end - start) / BUCKET_SECONDS) + 1):
        low, high = start + i * BUCKET_SECONDS, start + (i + 1) * BUCKET_SECONDS
        busy = sum(
            max(0.0, min(high, c.finished_at) - max(low, c.started_at or c.finished_at))
            for c in done
        )
        buckets.append(round(busy / BUCKET_SECONDS, 2))
    return {
        "jobs": len(done),
        "failures": sum(not c.ok for c in done),
        "last_end_s": end - start,
        "blocks": blocks,
        "cpu_s": {name: round(seconds, 3) for name, seconds in cpu.items()},
        "busy_workers_per_bucket": buckets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--warm", type=int, default=0, help="no-op jobs first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="computeinfra-balance-") as tmp:
        root = Path(tmp)
        images = make_images(root / "inputs" / "images", args.images)
        with _stack(root / "stack", {}) as stack, Client(settings=stack.settings) as client:
            warm = [client.submit("sleep", {"seconds": 0}, "warm") for _ in range(args.warm)]
            for handle in warm:
                handle.completion(timeout=TIMEOUT_SECONDS)
            before = _cpu(stack)
            start, done = _run(client, images)
            after = _cpu(stack)
    found = report(start, done, {k: after[k] - before.get(k, 0.0) for k in after})
    found.update(date=datetime.now(UTC).isoformat(timespec="seconds"), warm=args.warm)
    print(json.dumps({k: v for k, v in found.items() if k != "busy_workers_per_bucket"}, indent=1))
    busy = " ".join(f"{b:.1f}" for b in found["busy_workers_per_bucket"])
    print(f"busy workers, each 0.1 s: {busy}")
    print(f"saved {save(found, 'balance')}")


if __name__ == "__main__":
    main()
