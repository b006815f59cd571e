"""How long a block's consumer waits for records after it resumes its partitions.

A block pauses its partitions while its queue holds more work than its workers will soon
start, and resumes them once under half (`block/backlog.py`). This measures, on a broker
of its own, the time from resuming to the next record, with plain `Consumer.resume` and
with `GroupMember.pause_only` (which also seeks each resumed partition to where it stands,
`block/membership.py`), each after a pause of `--paused` seconds while the partitions hold
records.

    .venv/bin/python bench/resume.py --trials 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from report import save

from computeinfra.block.membership import GroupMember
from computeinfra.config import Settings
from computeinfra.kafka.clients import make_producer
from computeinfra.testing.stack import running_broker, settings_under

TOPIC = "resumeBench"
PARTITIONS = 6
RECORDS = 20_000
READ_FIRST = 50
DEADLINE_SECONDS = 30.0


def _next_record(member: GroupMember) -> float:
    """Seconds until ``member`` reads a record."""
    start = time.monotonic()
    while not member.records(1, 0.001):
        if time.monotonic() - start > DEADLINE_SECONDS:
            raise RuntimeError("no record after resuming")
    return time.monotonic() - start


def trial(settings: Settings, paused: float, plain: bool) -> float:
    """Read a few records, pause every partition for ``paused`` s (polling on, as a block
    does), resume; the seconds until the next record."""
    member = GroupMember(replace(settings, group=f"resume-{uuid.uuid4().hex[:8]}"), "m", [TOPIC])
    try:
        read = 0
        while read < READ_FIRST or len(member.assigned) < PARTITIONS:
            read += len(member.records(READ_FIRST, 0.5))
        member.pause_only(set(member.assigned))
        until = time.monotonic() + paused
        while time.monotonic() < until:
            member.records(READ_FIRST, 0.005)
        if plain:  # what pause_only did before it seeked
            member.consumer.resume(member.consumer.assignment())
            member.paused = set()
        else:
            member.pause_only(set())
        return _next_record(member)
    finally:
        member.close()


def run(trials: int, paused: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="resume-") as tmp, running_broker(Path(tmp)) as broker:
        bootstrap = broker.config.bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: its futures need it
        for future in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
            future.result()
        producer = make_producer(bootstrap)
        for i in range(RECORDS):
            producer.produce(TOPIC, b"x" * 200, key=str(i).encode())
        producer.flush(60)
        settings = settings_under({"COMPUTEINFRA_BOOTSTRAP": bootstrap})
        found: dict[str, list[float]] = {"resume": [], "pause_only": []}
        for _ in range(trials):  # in turn, so that drift weighs on both alike
            found["resume"].append(trial(settings, paused, plain=True))
            found["pause_only"].append(trial(settings, paused, plain=False))
    return {
        name: {"median_ms": 1000 * statistics.median(s), "max_ms": 1000 * max(s)}
        for name, s in found.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--paused", type=float, default=0.3, help="seconds paused")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "paused_s": args.paused,
        "trials": args.trials,
    }
    report.update(run(args.trials, args.paused))
    print(json.dumps(report, indent=1))
    print(f"saved {save(report, 'resume')}")


if __name__ == "__main__":
    main()
