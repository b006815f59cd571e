"""Issue #13's long job: `python bench/hours.py --seconds 7200` (2 hours; not in `make bench`).

On a stack of its own with 2 blocks, one `sleep` job of ``--seconds`` (asking for a time
limit past the task's default, up to its maximum) runs while 10 short jobs are submitted and
awaited every minute. Prints and saves: the long job's status and attempts (1: run once),
one completion per key, the slowest batch of short jobs, and whether the blocks' partitions,
seats or restarts ever changed (a rebalance or a restart while it ran).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import completions_for

from computeinfra import Client, JobTimeout
from computeinfra.testing.stack import DevStack, dev_stack

RESULTS = Path(__file__).resolve().parent / "results"
SHORT_JOBS = 10  # per batch, one batch a minute
BATCH_EVERY_SECONDS = 60.0
SHORT_TIMEOUT_SECONDS = 300.0
LIMIT_MARGIN_SECONDS = 300.0


def _blocks(stack: DevStack) -> list[tuple[Any, ...]]:
    """Each block's (index, partitions, restarts, seat), from `computeinfra blocks`."""
    cli = Path(sys.executable).with_name("computeinfra")
    out = subprocess.run(
        [str(cli), "blocks", "--json"],
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = json.loads(out.stdout) if out.returncode == 0 else []
    return [
        (
            r.get("block"),
            tuple(r.get("partitions") or ()),
            r.get("restarts"),
            r.get("group_instance_id"),
        )
        for r in rows
    ]


def run(stack: DevStack, client: Client, seconds: float) -> dict[str, Any]:
    start = time.monotonic()
    long = client.submit(
        "sleep", {"seconds": seconds}, "bench-hours", time_limit=seconds + LIMIT_MARGIN_SECONDS
    )
    views: list[list[tuple[Any, ...]]] = []
    shorts: list[str] = []
    slowest = 0.0
    while not long.done():
        began = time.monotonic()
        batch = [
            client.submit("sleep", {"seconds": 0.1}, "bench-hours/short") for _ in range(SHORT_JOBS)
        ]
        for handle in batch:
            handle.result(SHORT_TIMEOUT_SECONDS)
        slowest = max(slowest, time.monotonic() - began)
        shorts += [h.key for h in batch]
        views.append(_blocks(stack))
        print(json.dumps({"t": round(time.monotonic() - start), "blocks": views[-1]}), flush=True)
        with contextlib.suppress(JobTimeout):  # the next minute's batch, unless it ended
            long.completion(max(BATCH_EVERY_SECONDS - (time.monotonic() - began), 0.001))
    final = long.completion()
    found = completions_for(stack.settings.bootstrap_servers, [long.key, *shorts])
    return {
        "seconds": seconds,
        "status": final.status.value,
        "attempts": final.attempts,
        "elapsed_s": round(time.monotonic() - start),
        "short_jobs": len(shorts),
        "slowest_batch_s": round(slowest, 2),
        "completions_per_key": sorted({len(v) for v in found.values()}),
        "distinct_block_views": len({tuple(v) for v in views}),
        "first_view": views[0] if views else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=7200.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="computeinfra-hours-") as tmp,
        dev_stack(Path(tmp), 2, {"COMPUTEINFRA_WEB_PORT": "0"}) as stack,
        Client(settings=stack.settings) as client,
    ):
        result = run(stack, client, args.seconds)
    result["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"hours-{result['date'].replace(':', '')}.json").write_text(json.dumps(result))
    ok = result["status"] == "succeeded" and result["attempts"] == 1
    sys.exit(0 if ok and result["completions_per_key"] == [1] else 1)


if __name__ == "__main__":
    main()
