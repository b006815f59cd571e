"""The chaos test at a larger scale: `python bench/chaos.py --jobs 5000 --kills 30`.

Starts its own broker and blocks, runs tests/chaos.py's scenario, prints and saves a report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos import run_chaos

from computeinfra import Client
from computeinfra.testing.stack import dev_stack

RESULTS = Path(__file__).resolve().parent / "results"
# The chaos mix runs the test suite's sample tasks (a 5 MB result, a task that raises).
SAMPLE_TASKS = {
    "COMPUTEINFRA_TASKS": "sample_tasks",
    "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "tests" / "integration"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--blocks", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="computeinfra-chaos-") as tmp,
        dev_stack(Path(tmp), args.blocks, SAMPLE_TASKS) as stack,
        Client(settings=stack.settings) as c,
    ):
        report = run_chaos(stack, c, args.jobs, args.kills)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "jobs": report.jobs,
        "blocks": args.blocks,
        "seconds": round(report.seconds, 1),
        "kills": len(report.kills),
        "broker_restarts": report.broker_restarts,
        "statuses": dict(report.statuses),
        "problems": report.problems,
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"chaos-{result['date'].replace(':', '')}.json").write_text(json.dumps(result))
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
