"""The fuzz test at a larger scale: `python bench/fuzz.py --records 10000`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz import run_fuzz

from computeinfra import Client
from computeinfra.cluster.launcher import block_statuses
from computeinfra.testing.stack import dev_stack

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="computeinfra-fuzz-") as tmp,
        dev_stack(Path(tmp), args.blocks) as stack,
        Client(settings=stack.settings) as c,
    ):
        before = {b["block"]: b["supervisor_pid"] for b in block_statuses(stack.settings)}
        start = time.monotonic()
        report = run_fuzz(stack, c, args.records)
        seconds = time.monotonic() - start
        after = {b["block"]: b["supervisor_pid"] for b in block_statuses(stack.settings)}
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **report,
        "seconds": round(seconds, 1),
        "supervisor_restarts": sum(before[b] != after.get(b) for b in before),
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"fuzz-{result['date'].replace(':', '')}.json").write_text(json.dumps(result))
    failed = result["answered_more_than_once"] or result["supervisor_restarts"]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
