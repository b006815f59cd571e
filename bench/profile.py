"""`make profile` (issue #15, step 1): where the time of a job goes, measured.

On a stack of its own (as `make bench` starts it: a broker and 2 blocks, no web app), for
the real-work workload (images compressed) and the latency workload (no-op jobs at a fixed
rate), this reports:

- CPU seconds per kind of process over each workload (psutil, user + system): the broker's
  JVM, the supervisors, the workers, the analyzer, Ray's own processes, the `up` process
  and this driver;
- a flame graph of one supervisor and one worker over each workload (py-spy, SVG), saved
  under bench/results/.

The figures are saved as JSON beside them and printed as a table. Kafka requests per job
by API key (the broker's RequestMetrics) are not measured yet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from ours import OursDriver
from realwork import make_images, ours_seconds
from rich.console import Console
from rich.table import Table
from workloads import latency_at_rate

from computeinfra import Client
from computeinfra.cluster.launcher import block_statuses
from computeinfra.testing.stack import DevStack, dev_stack

RESULTS = Path(__file__).resolve().parent / "results"
# Ray's own processes, by the start of their name or command line.
RAY_SYSTEM = ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor", "ray::IDLE",
              "runtime_env", "ray::DashboardAgent", "default_worker")  # fmt: skip
console = Console()


def _kinds(stack: DevStack) -> dict[int, str]:
    """Every process of the stack, by pid, with its kind."""
    kinds: dict[int, str] = {os.getpid(): "driver (this process)"}
    for row in block_statuses(stack.settings):
        if row.get("supervisor_pid"):
            kinds[row["supervisor_pid"]] = "supervisors"
        for pid in row.get("worker_pids") or []:
            kinds[pid] = "workers"
    up = psutil.Process(stack.process.pid)
    kinds.setdefault(up.pid, "up (launcher, keeper)")
    for child in up.children(recursive=True):
        kinds.setdefault(child.pid, _kind_of(child))
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "kafka.Kafka" in cmdline and str(stack.root) in cmdline:
            kinds[proc.pid] = "broker (JVM)"
    return kinds


def _kind_of(proc: psutil.Process) -> str:
    try:
        name, cmdline = proc.name(), " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    if "Analyzer" in cmdline:
        return "analyzer"
    if "kafka.Kafka" in cmdline:
        return "broker (JVM)"
    if any(name.startswith(n) or n in cmdline for n in RAY_SYSTEM):
        return "Ray system"
    return "other"


def _cpu(pids: dict[int, str]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


def _flame(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(max(int(seconds), 1)),
           "--rate", "200", "--format", "flamegraph", "--output", str(out),
           "--nonblocking"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def measure(stack: DevStack, name: str, seconds: float, run: Any) -> dict[str, Any]:
    """CPU seconds per kind while ``run()`` runs, and flame graphs of a supervisor and a
    worker over its first ``seconds``."""
    kinds = _kinds(stack)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S%z")
    targets = {
        "supervisor": next(p for p, k in kinds.items() if k == "supervisors"),
        "worker": next(p for p, k in kinds.items() if k == "workers"),
    }
    graphs = {role: RESULTS / f"{stamp}-{name}-{role}.svg" for role in targets}
    spies = [_flame(pid, seconds, graphs[role]) for role, pid in targets.items()]
    before, start = _cpu(kinds), time.perf_counter()
    result = run()
    wall = time.perf_counter() - start
    after = _cpu(kinds)
    for spy in spies:
        spy.wait(seconds + 60)
    per_kind: Counter[str] = Counter()
    for pid, used in after.items():
        per_kind[kinds[pid]] += used - before.get(pid, 0.0)
    return {
        "wall_seconds": wall,
        "cpu_seconds": dict(per_kind.most_common()),
        "flame_graphs": {r: str(p.relative_to(RESULTS.parent.parent)) for r, p in graphs.items()},
        "result": result,
    }


def _show(name: str, found: dict[str, Any]) -> None:
    table = Table(title=f"{name}: CPU seconds over {found['wall_seconds']:.1f} s of wall time")
    table.add_column("process kind")
    table.add_column("CPU s", justify="right")
    table.add_column("share of 2 cores", justify="right")
    cores = os.cpu_count() or 1
    for kind, used in found["cpu_seconds"].items():
        table.add_row(kind, f"{used:.2f}", f"{used / (found['wall_seconds'] * cores):.0%}")
    console.print(table)
    for role, path in found["flame_graphs"].items():
        console.print(f"  {role} flame graph: {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--rate", type=float, default=200.0, help="latency workload, jobs/s")
    parser.add_argument("--latency-jobs", type=int, default=2000)
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="computeinfra-profile-") as tmp:
        root = Path(tmp)
        images = make_images(root / "inputs" / "images", args.images)
        env = {"COMPUTEINFRA_WEB_PORT": "0"}
        with dev_stack(root, 2, env) as stack, Client(settings=stack.settings) as client:
            driver = OursDriver(client)
            latency_at_rate(driver, args.rate, 200)  # warm up: tasks timed, workers up
            ours_seconds(client, images[:20])
            seconds = args.latency_jobs / args.rate
            report["latency"] = measure(
                stack, "latency", seconds,
                lambda: latency_at_rate(driver, args.rate, args.latency_jobs),
            )  # fmt: skip
            report["realwork"] = measure(
                stack, "realwork", 10.0, lambda: ours_seconds(client, images)
            )
    for name, found in report.items():
        _show(name, found)
    out = RESULTS / f"{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%S%z')}-profile.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"saved {out}")


if __name__ == "__main__":
    main()
