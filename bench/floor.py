"""The design's floor (issue #15): what Kafka transactions and Ray cost on this machine
with none of computeinfra's code on the path.

Issue #15 asks, where a target proves impossible on this design, for the measurement that
shows why. This measures, in one command, the least each target's workload costs here:

- ``latency``: no-op records at each ``--rate`` (a comma list) through a bare relay
  (``relay.py``: consume, answer in a transaction with the offsets, nothing else), then
  with a call to a Ray actor per record (the worker's hop; above 400/s, one call per poll,
  not waited for, as a block sends a poll's jobs). The driver submits as our SDK does
  (idempotent, acks=all, 2 ms linger) and a read_committed watcher tells it of each
  answer. Hop by hop, as ``bench/hops.py`` does for a block.
- ``realwork``: `make bench`'s images, one record each, run by the relay on a
  ``multiprocessing.Pool(2)`` and on two Ray actors, each output written as a job's is;
  against the bare Pools of `make bench` on the same images, in the same run.
- ``idle``: a broker, two consumers of a group waiting on a topic, and Ray with five actors
  (a 2-block stack's two supervisors, two workers and analyzer) that do nothing.

``python bench/floor.py [--only latency,realwork,idle]``; JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
from bare import BareDriver, create_topics, relay
from confluent_kafka import Consumer
from cpu import cpu_seconds, spent_by_kind
from machine import machine
from realwork import compress, compress_and_write, make_images, pool_seconds
from relay import take
from workloads import Recorder, latency_at_rate, percentiles_ms

from computeinfra.testing.stack import running_broker

RESULTS = Path(__file__).resolve().parent / "results"
WAIT_SECONDS = 600.0
# Idle: how long Ray's start-up work and the consumers' joins are left to end first.
SETTLE_SECONDS = 30.0

HOPS = {
    "produce (submit → acknowledged)": ("sent", "acked"),
    "fetch (→ the relay read it)": ("acked", "read"),
    "work (→ done)": ("read", "ran"),
    "batching (→ its transaction began)": ("ran", "began"),
    "transaction (→ committed)": ("began", "committed"),
    "notify (→ the watcher had it)": ("committed", "notified"),
    "total": ("sent", "notified"),
}


def hops(answers: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        hop: percentiles_ms([a[end] - a[start] for a in answers])
        for hop, (start, end) in HOPS.items()
    }


# What the relay does for each record, and the driver's linger (ms): as our SDK (2 ms), and
# none, which change 6 found no better for us end to end. One Ray call per record, waited
# for, cannot keep up near our half load: above 400/s the relay makes one call per poll.
LATENCY_RUNS = (("none", 2), ("ray", 2), ("none", 0), ("ray", 0))
HIGH_RATE_RUNS = (("none", 2), ("ray-batch", 2), ("ray-batch-thread", 2))
ONE_CALL_A_RECORD_UP_TO = 400.0


def latency(
    bootstrap: str, folder: Path, rates: list[float], jobs: int, repeat: int
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for run in range(repeat):
        for rate in rates:
            runs = LATENCY_RUNS if rate <= ONE_CALL_A_RECORD_UP_TO else HIGH_RATE_RUNS
            for work, linger in runs:
                with relay(bootstrap, work, folder, linger) as driver:
                    result = latency_at_rate(driver, rate, jobs)
                measured = sorted(driver.answers)[-jobs:]
                result["hops"] = hops([driver.answers[s] for s in measured])
                found[f"{work}, linger {linger} ms, {rate:.0f}/s #{run + 1}"] = result
    return found


def realwork(bootstrap: str, folder: Path, count: int, repeat: int) -> dict[str, Any]:
    images = make_images(folder / "images", count)
    written = folder / "pool-out"
    written.mkdir()
    found: dict[str, Any] = {"seconds": {}, "cpu": {}}
    for run in range(repeat):
        found["seconds"][f"pool #{run + 1}"] = pool_seconds(2, compress, images)
        write = functools.partial(compress_and_write, str(written))
        found["seconds"][f"pool_writing #{run + 1}"] = pool_seconds(2, write, images)
        for work in ("pool-write", "ray-write"):
            with relay(bootstrap, work, folder) as driver:
                driver.payload = lambda i: {"path": images[i % count]}
                _batch(driver, 20)  # start every process and connection, as make bench does
                kinds = _kinds(
                    {os.getpid(): "driver (submits, watches)", driver.relay.pid: "relay"}
                )
                before = cpu_seconds(kinds)
                found["seconds"][f"{work} #{run + 1}"] = _batch(driver, count)
                found["cpu"][f"{work} #{run + 1}"] = spent_by_kind(
                    kinds, before, cpu_seconds(kinds)
                )
    return found


def _kinds(named: dict[int, str]) -> dict[int, str]:
    """This process's descendants by kind, ``named`` as given: the broker, the workers (a
    Pool's processes, Ray's ``Worker`` actors) and Ray's own processes."""
    kinds = dict(named)
    for child in psutil.Process().children(recursive=True):
        if child.pid in kinds:
            continue
        try:
            name, cmdline = child.name(), " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "kafka.Kafka" in cmdline:
            kinds[child.pid] = "broker (JVM)"
        elif name.startswith("ray::Worker") or "multiprocessing" in cmdline:
            kinds[child.pid] = "workers"
        else:
            kinds[child.pid] = "Ray's own processes"
    return kinds


def _batch(driver: BareDriver, count: int) -> float:
    """Submit ``count`` records at once; seconds from the first submit to the last answer."""
    recorder = Recorder(count)
    start = time.perf_counter()
    for i in range(count):
        driver.submit(i, recorder.done)
    recorder.wait(driver, WAIT_SECONDS)
    return max(recorder.notified) - start


def idle(bootstrap: str, seconds: float) -> dict[str, Any]:
    """CPU, in % of one core, of a broker, two idle group consumers and Ray with five idle
    actors, each measured over the same ``seconds``."""
    from computeinfra.config import prepare_process_environment

    prepare_process_environment()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")
    consumers = [_idle_consumer(bootstrap) for _ in range(2)]
    try:
        actors = [ray.remote(num_cpus=0)(_IdleActor).remote() for _ in range(5)]
        pids = ray.get([a.pid.remote() for a in actors])
        time.sleep(SETTLE_SECONDS)  # settle: Ray's start-up work, the group's join
        # After the settle: what started during it counts too.
        kinds = _kinds({os.getpid(): "this process (Ray's driver, 2 consumers)",
                        **dict.fromkeys(pids, "Ray actors (5, idle)")})  # fmt: skip
        before = cpu_seconds(kinds)
        time.sleep(seconds)  # measuring an idle stack: nothing to wait for
        spent = spent_by_kind(kinds, before, cpu_seconds(kinds))
    finally:
        for stop in consumers:
            stop()
        ray.shutdown()
    share = {kind: cpu / seconds * 100 for kind, cpu in spent.items()}
    return {"seconds": seconds, "percent_of_a_core": share, "total": sum(share.values())}


class _IdleActor:
    def pid(self) -> int:
        return os.getpid()


def _idle_consumer(bootstrap: str) -> Callable[[], None]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "floor-idle",
                         "isolation.level": "read_committed"})  # fmt: skip
    consumer.subscribe(["floor-idle"])
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            take(consumer, 0.2)  # as a block's idle poll
        consumer.close()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    return lambda: (stop.set(), thread.join())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="latency,realwork,idle")
    parser.add_argument("--rate", default="200", help="latency: records/s, a comma list")
    parser.add_argument("--jobs", type=int, default=2000, help="latency: records timed")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=2, help="latency and realwork, in turn")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    report: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp, running_broker(Path(tmp)) as broker:
        bootstrap = broker.config.bootstrap
        if "idle" in only:  # first: a fresh broker, before any load warmed or filled it
            create_topics(bootstrap, ("floor-idle",))
            report["idle"] = idle(bootstrap, args.idle_seconds)
        if "latency" in only:
            rates = [float(r) for r in args.rate.split(",")]
            report["latency"] = latency(bootstrap, Path(tmp), rates, args.jobs, args.repeat)
        if "realwork" in only:
            report["realwork"] = realwork(bootstrap, Path(tmp), args.images, args.repeat)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%S%z}-floor.json"
    out.write_text(json.dumps(report, indent=1))
    show(report)
    print(f"saved {out}")


def show(report: dict[str, Any]) -> None:
    for work, found in report.get("latency", {}).items():
        print(f"latency, relay doing {work!r}, at {found['achieved_rate']:.0f}/s (ms):")
        for hop, q in found["hops"].items():
            print(f"  {hop:<40} {q['p50_ms']:7.2f} {q['p95_ms']:7.2f} {q['p99_ms']:7.2f}")
    if "realwork" in report:
        found = report["realwork"]["seconds"]
        for name, seconds in found.items():
            run = name.split()[-1]
            pool, writing = found[f"pool {run}"], found[f"pool_writing {run}"]
            print(f"realwork {name:<18} {seconds:6.2f} s  {seconds / pool:5.2f}x the Pool"
                  f"  {seconds / writing:5.2f}x the Pool that writes")  # fmt: skip
        for name, spent in report["realwork"]["cpu"].items():
            print(f"  CPU s, {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in spent.items()))
    if "idle" in report:
        for kind, share in report["idle"]["percent_of_a_core"].items():
            print(f"idle {kind:<45} {share:5.2f} % of a core")
        print(f"idle total {report['idle']['total']:.2f} %")


if __name__ == "__main__":
    main()
