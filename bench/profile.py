"""`make profile` (issue #15, step 1): where the time of a job goes, measured.

On a stack of its own (as `make bench` starts it: a broker and 2 blocks, no web app), for
the real-work workload (images compressed), the latency workload (no-op jobs at a fixed
rate) and a saturation workload, this reports:

- CPU seconds per kind of process over each workload (psutil, user + system): the broker's
  JVM, the supervisors, the workers, the analyzer, Ray's own processes, the `up` process
  and this driver;
- a flame graph of one supervisor and one worker over each workload (py-spy, SVG), saved
  under bench/results/;
- Kafka requests per job, by API and by kind of client, counted by the broker
  (``broker_requests.py``), on a second stack: the broker's request log costs CPU;
- the latency budget of one no-op job at ``--rate``, hop by hop (``hops.py``), on a third.

A third workload, saturation, submits ``--saturation-jobs`` no-op jobs at once. The
figures are saved as JSON beside the graphs and printed as tables.
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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import workloads
from broker_requests import REQUEST_LOG_OPTS, RequestLog
from cpu import cpu_seconds, spent_by_kind
from hops import HOPS, HOPS_DIR_VARIABLE, budget
from ours import OursDriver
from realwork import make_images, ours_seconds
from rich.console import Console
from rich.table import Table
from workloads import Recorder, latency_at_rate

from computeinfra import Client
from computeinfra.cluster.launcher import block_statuses
from computeinfra.config import ToolSettings
from computeinfra.testing.stack import DevStack, dev_stack

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
# Ray's own processes, by the start of their name or command line.
RAY_SYSTEM = ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor", "ray::IDLE",
              "runtime_env", "ray::DashboardAgent", "default_worker")  # fmt: skip
console = Console(width=150)  # tables whole in a log file too
JVM_OPTS = "COMPUTEINFRA_KAFKA_JVM_OPTS"
WARM_UP_JOBS = workloads.WARM_UP_JOBS  # each workload's own warm-up is then one job
Workloads = dict[str, tuple[Callable[[], Any], int, float]]


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


def _flame(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(max(int(seconds), 1)),
           "--rate", "200", "--format", "flamegraph", "--output", str(out),
           "--nonblocking"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def measure(stack: DevStack, name: str, seconds: float, run: Any, jobs: int) -> dict[str, Any]:
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
    before, start = cpu_seconds(kinds), time.perf_counter()
    result = run()
    wall = time.perf_counter() - start
    after = cpu_seconds(kinds)
    for spy in spies:
        spy.wait(seconds + 60)
    per_kind = spent_by_kind(kinds, before, after)
    return {
        "jobs": jobs,
        "wall_seconds": wall,
        "cpu_seconds": dict(sorted(per_kind.items(), key=lambda kv: -kv[1])),
        "flame_graphs": {r: str(p.relative_to(RESULTS.parent.parent)) for r, p in graphs.items()},
        "result": result,
    }


def show(report: dict[str, Any]) -> None:
    for name, found in report.get("cpu", {}).items():
        _show_cpu(name, found)
    if "requests" in report:
        _show_requests(report["requests"])
    if "hops" in report:
        _show_hops(report["hops"])


def _show_cpu(name: str, found: dict[str, Any]) -> None:
    table = Table(title=f"{name}: CPU seconds over {found['wall_seconds']:.1f} s of wall time")
    table.add_column("process kind")
    table.add_column("CPU s", justify="right")
    table.add_column("share of the cores", justify="right")
    table.add_column("ms per job", justify="right")
    cores = os.cpu_count() or 1
    jobs = found["jobs"]
    for kind, used in found["cpu_seconds"].items():
        share = used / (found["wall_seconds"] * cores)
        per_job = f"{used / jobs * 1000:.2f}" if jobs else "—"
        table.add_row(kind, f"{used:.2f}", f"{share:.1%}", per_job)
    console.print(table)
    for role, path in found["flame_graphs"].items():
        console.print(f"  {role} flame graph: {path}")


def _show_requests(report: dict[str, Any]) -> None:
    counts: Counter[str] = Counter()
    for found in report.values():
        counts.update(found["by_api"])
    apis = [api for api, _n in counts.most_common()]
    table = Table(title="Kafka requests per job (idle: per second), counted by the broker")
    table.add_column("API")
    for name, found in report.items():
        unit = f"{found['jobs']} jobs" if found["jobs"] else "per second"
        table.add_column(f"{name} ({unit})", justify="right")
    for api in apis:
        table.add_row(api, *(f"{f['by_api'].get(api, 0) / f['per']:.2f}" for f in report.values()))
    table.add_row("all", *(f"{f['per_job']:.2f}" for f in report.values()), style="bold")
    console.print(table)
    for name, found in report.items():
        per, clients = found["per"], found["by_client"].items()
        console.print(
            f"  {name}, per client kind: " + ", ".join(f"{c} {n / per:.2f}" for c, n in clients)
        )


def _show_hops(found: dict[str, Any]) -> None:
    table = Table(title=f"one no-op job at {found['rate']:.0f}/s, hop by hop "
                        f"({found['joined']} of {found['jobs']} jobs)")  # fmt: skip
    for column in ("hop", "p50 ms", "p95 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column == "hop" else "right")
    for hop in (*HOPS, "total"):
        row = found[hop]
        table.add_row(hop, *(f"{row[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")),
                      style="bold" if hop == "total" else None)  # fmt: skip
    console.print(table)


def _no_ops(driver: OursDriver, n: int) -> dict[str, Any]:
    """Submit ``n`` no-op jobs at once and wait for them all."""
    recorder = Recorder(n)
    for i in range(n):
        driver.submit(i, recorder.done)
    recorder.wait(driver)
    return {"jobs": n}


def _idle(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)  # the workload is nothing happening
    return {"jobs": 0}


def _workloads(client: Client, images: list[str], args: argparse.Namespace) -> Workloads:
    """The three workloads, after the warm-up: by name, how to run it and its job count.
    Each runs without a warm-up of its own, which would be counted with it."""
    driver = OursDriver(client)
    # Tasks timed, workers up, the broker's hot paths compiled: on every pass's stack.
    workloads.warm_up(driver, WARM_UP_JOBS)
    _images(client, images[:20])
    workloads.WARM_UP_JOBS = 1
    runs: Workloads = {
        "latency": (lambda: latency_at_rate(driver, args.rate, args.latency_jobs),
                    args.latency_jobs, args.latency_jobs / args.rate),
        "realwork": (lambda: _images(client, images), len(images), 10.0),
        "saturation": (lambda: _no_ops(driver, args.saturation_jobs), args.saturation_jobs, 5.0),
        # No jobs: what the stack costs at rest (the target: 3 % of one core in all).
        "idle": (lambda: _idle(args.idle_seconds), 0, args.idle_seconds),
    }  # fmt: skip
    return {name: runs[name] for name in args.workloads.split(",")}


def cpu_pass(root: Path, images: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """CPU per process kind and flame graphs, with nothing else measuring."""
    try:
        with _stack(root / "cpu", {}) as stack, Client(settings=stack.settings) as client:
            runs = _workloads(client, images, args)
            return {name: measure(stack, name, seconds, run, jobs)
                    for name, (run, jobs, seconds) in runs.items()}  # fmt: skip
    finally:
        # Asking the blocks their pids connected this process to that stack's Ray, which
        # ends this process a minute after it is gone. (Imported here, after computeinfra,
        # which sets Ray's environment before Ray reads it.)
        import ray

        ray.shutdown()


def requests_pass(root: Path, images: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Kafka requests per job, by API and by client, from the broker's request log."""
    report: dict[str, Any] = {}
    with (
        _request_log(),
        _stack(root / "requests", {}) as stack,
        Client(settings=stack.settings) as client,
    ):
        runs = _workloads(client, images, args)
        log = RequestLog(root / "requests" / "kafka" / "requests.log")
        for name, (run, jobs, _seconds) in runs.items():
            log.mark()
            start = time.perf_counter()
            run()
            found = log.since_mark()
            # Per job; for the idle workload, per second.
            per = float(jobs) or time.perf_counter() - start
            report[name] = {"jobs": jobs, "per": per, "per_job": found["total"] / per, **found}
    return report


@contextmanager
def _request_log() -> Iterator[None]:
    """The broker that dev_stack starts in this process logs every request it serves."""
    saved = os.environ.get(JVM_OPTS)
    os.environ[JVM_OPTS] = f"{ToolSettings.from_env().kafka_jvm_opts} {REQUEST_LOG_OPTS}"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[JVM_OPTS]
        else:
            os.environ[JVM_OPTS] = saved


def hops_pass(root: Path, images: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The latency budget of one no-op job at ``--rate``, hop by hop."""
    folder = root / "hops-stamps"
    env = {
        "COMPUTEINFRA_MIDDLEWARE": "hops:HopTimer",
        HOPS_DIR_VARIABLE: str(folder),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])),
    }
    with _stack(root / "hops", env) as stack, Client(settings=stack.settings) as client:
        _workloads(client, images, args)
        return budget(stack.settings.bootstrap_servers, folder, args.rate, args.latency_jobs)


def _stack(root: Path, env: dict[str, str]) -> AbstractContextManager[DevStack]:
    """A stack of its own under ``root``, reading the images of ``root``'s parent."""
    inputs = str(root.parent / "inputs")
    return dev_stack(
        root, 2, {"COMPUTEINFRA_WEB_PORT": "0", "COMPUTEINFRA_INPUT_ROOTS": inputs, **env}
    )


def _images(client: Client, images: list[str]) -> dict[str, Any]:
    done = ours_seconds(client, images)
    if done["failures"]:
        raise RuntimeError(f"profile: {done['failures']} image jobs failed; see the stack's log")
    return done


PASSES = {"cpu": cpu_pass, "requests": requests_pass, "hops": hops_pass}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--rate", type=float, default=200.0, help="latency workload, jobs/s")
    parser.add_argument("--latency-jobs", type=int, default=2000)
    parser.add_argument("--saturation-jobs", type=int, default=10000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--workloads", default="latency,realwork,saturation,idle")
    parser.add_argument("--passes", default=",".join(PASSES), help="of: " + ", ".join(PASSES))
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="computeinfra-profile-") as tmp:
        root = Path(tmp)
        images = make_images(root / "inputs" / "images", args.images)
        for name in args.passes.split(","):
            console.print(f"profile: {name} pass")
            report[name] = PASSES[name](root, images, args)
    show(report)
    out = RESULTS / f"{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%S%z')}-profile.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"saved {out}")


if __name__ == "__main__":
    main()
