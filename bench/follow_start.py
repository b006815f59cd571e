"""How late a follower started at the end sees the first record written after its start,
under CPU load, with librdkafka's 500 ms fetch wait and with the 5 s ``long_poll`` one.

Why: librdkafka keeps one fetch in flight per broker, and a consumer's first fetch may carry
only the partitions started by then. A record in any other partition waits for that fetch
to end: up to the fetch wait. The SDK's completion watcher and ``submit --wait`` start at
the end and want the next record at once, so they keep 500 ms (docs/performance.md).

Each trial starts a follower at the end of a 12-partition topic, writes one record to one
partition (each in turn), and times it until the follower hands it over. Busy loops, one
more than the cores, make the start slow enough to show the race. Prints JSON and
saves it under bench/results/.

    .venv/bin/python bench/follow_start.py [--trials 48]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from computeinfra.kafka.clients import make_producer
from computeinfra.kafka.fetching import Fetching
from computeinfra.kafka.follow import END, TopicFollower
from computeinfra.testing.stack import running_broker

TOPIC = "followStart"
PARTITIONS = 12
WAIT_SECONDS = 15.0
BUSY_SECONDS = 900  # a busy loop ends by itself even if this script is killed
BUSY = f"import time\nend = time.monotonic() + {BUSY_SECONDS}\nwhile time.monotonic() < end: pass"
RESULTS = Path(__file__).parent / "results"


def _trial(bootstrap: str, producer: Any, partition: int, long_poll: bool) -> float:
    seen = threading.Event()
    fetching = Fetching.LONG if long_poll else Fetching.PROMPT
    follower = TopicFollower(
        bootstrap, (TOPIC,), lambda _m: seen.set(), start=END, fetching=fetching
    ).start(assign_now=True)
    try:
        start = time.perf_counter()
        producer.produce(TOPIC, b"x", partition=partition)
        producer.flush()
        if not seen.wait(WAIT_SECONDS):
            raise TimeoutError(f"no record in {WAIT_SECONDS:.0f} s")
        return time.perf_counter() - start
    finally:
        follower.stop()


def _summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
        "max_ms": 1000 * ordered[-1],
        "over_1s": sum(s > 1.0 for s in ordered),
    }


def run(trials: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="follow-start-") as tmp,
        running_broker(Path(tmp)) as broker,
    ):
        bootstrap = broker.status().bootstrap
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: its futures need it
        for future in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
            future.result()
        found = _under_load(bootstrap, trials)
    report: dict[str, Any] = {name: _summary(seconds) for name, seconds in found.items()}
    report["trials"] = trials
    return report


def _under_load(bootstrap: str, trials: int) -> dict[str, list[float]]:
    producer = make_producer(bootstrap)
    busy: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range((os.cpu_count() or 1) + 1):
            busy.append(subprocess.Popen([sys.executable, "-c", BUSY]))
        found: dict[str, list[float]] = {"wait_500ms": [], "long_poll_5s": []}
        for n in range(trials):  # the two settings in turn, under the same load
            found["wait_500ms"].append(_trial(bootstrap, producer, n % PARTITIONS, False))
            found["long_poll_5s"].append(_trial(bootstrap, producer, n % PARTITIONS, True))
        return found
    finally:
        for process in busy:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=48)
    report = run(parser.parse_args().trials)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%S%z')}-follow-start.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
