"""`make bench`: computeinfra against Celery 5 and Dramatiq, and against a bare process pool.

Sections (``--only`` picks some, comma-separated):

- throughput: N zero-second ``sleep`` jobs as fast as possible, first submit to last
  notification, on computeinfra and on Celery and Dramatiq (Redis broker and results, the
  same concurrency as our block count);
- latency: submit-to-notification p50/p95/p99 on all three at the same rates (``--rates``,
  50 and 200 jobs/s) and at each one's own half load (half the throughput it just
  reached), for ``--latency-seconds`` (at least 200 jobs, at most ``--latency-jobs``);
- realwork: generated 1024x768 images compressed to JPEG 50, one job per image, against a
  bare ``multiprocessing.Pool`` running the same function on the same files, and against
  one that also writes each output as a job does (temporary name, fsync, rename); each
  system runs them ``realwork.RUNS`` times in a row, the last against the targets;
- scale: RSS of the supervisor, worker, analyzer and client processes after a checkpoint
  and after many more jobs;
- longjob: short jobs at 20/s, p50/p95/p99, on an idle stack and beside one long job.
- recovery: SIGKILL of a worker, then of a supervisor, until their work resumes.
- startup: `up` to ready, and the web app's first page, on a data directory holding a
  long history (1,000,000 completed jobs, 10,000 pending) beside an empty one.
- progress: a CPU task calling ``ctx.progress`` at each of 10,000 steps, against the same
  task without the calls (in process).

Prints a table against issues 5's and 15's targets, saves bench/results/<UTC time>.json with the
machine description, and with ``--readme`` puts the table in README.md.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads
from machine import machine
from ours import OursDriver
from peers.celery_peer import celery_peer
from peers.dramatiq_peer import dramatiq_peer
from realwork import (
    RUNS,
    compress,
    compress_and_write,
    make_images,
    ours_seconds,
    peer_seconds,
    pool_runs,
    repeated,
)
from redis_server import redis_server
from report import HALF_LOAD, rows, save, show, write_readme
from rich.console import Console
from scale import run_scale
from workloads import Driver, latency_at_rate, throughput

from computeinfra import Client
from computeinfra.testing.stack import DevStack, dev_stack

SECTIONS = (
    "throughput",
    "latency",
    "realwork",
    "scale",
    "longjob",
    "recovery",
    "startup",
    "progress",
)
QUICK = {
    "jobs": 300,
    "latency_jobs": 200,
    "images": 8,
    "scale_jobs": 1500,
    "scale_checkpoint": 500,
    "repeats": 1,
    "warmup": 50,
    "long_jobs": 40,
    "long_seconds": 20.0,
    "history": 20_000,
    "history_pending": 500,
}
LOG_TAIL_CHARS = 4000
MIN_LATENCY_JOBS = 200  # enough for a p99
TABLE_WIDTH = 160  # a log file is not a terminal; rich would wrap the table at 80
console = Console() if Console().is_terminal else Console(width=TABLE_WIDTH)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs for throughput")
    parser.add_argument("--latency-jobs", type=int, default=2_000)
    parser.add_argument("--rates", default="50,200",
                        help="latency at these rates (jobs/s) on every system, and at each "
                             "system's own half load")  # fmt: skip
    parser.add_argument("--latency-seconds", type=float, default=10.0,
                        help="a latency run lasts this long (200 jobs at least, "
                             "--latency-jobs at most)")  # fmt: skip
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--scale-jobs", type=int, default=200_000)
    parser.add_argument("--scale-checkpoint", type=int, default=10_000)
    parser.add_argument("--long-jobs", type=int, default=400, help="short jobs per longjob run")
    parser.add_argument("--long-seconds", type=float, default=300.0, help="the long job's length")
    parser.add_argument("--history", type=int, default=1_000_000, help="completed jobs, startup")
    parser.add_argument("--history-pending", type=int, default=10_000, help="pending, startup")
    parser.add_argument("--repeats", type=int, default=3, help="kills per recovery measure")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed jobs per system")
    parser.add_argument("--blocks", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--no-peers", action="store_true", help="skip Celery and Dramatiq")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--readme", action="store_true", help="write the table to README.md")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    workloads.WARM_UP_JOBS = args.warmup
    args.sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    if unknown := args.sections - set(SECTIONS):
        parser.error(f"unknown section(s) {sorted(unknown)}: pick from {', '.join(SECTIONS)}")
    return args


def noop_sections(driver: Driver, args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Throughput, then latency at the common rates and at this system's own half load (its
    throughput just measured), for one system; results into ``report``."""
    name = driver.name
    if args.sections & {"throughput", "latency"}:
        console.print(f"{name}: throughput of {args.jobs:,} no-op jobs")
        report.setdefault("throughput", {})[name] = throughput(driver, args.jobs)
    if "latency" not in args.sections:
        return
    half = report["throughput"][name]["per_second"] / 2
    rates = [
        (f"{rate:g}/s", rate) for rate in map(float, args.rates.split(",") if args.rates else [])
    ]
    found = report.setdefault("latency", {}).setdefault(name, {})
    for label, rate in [*rates, (HALF_LOAD, half)]:
        jobs = max(min(args.latency_jobs, int(rate * args.latency_seconds)), MIN_LATENCY_JOBS)
        console.print(f"{name}: latency of {jobs:,} jobs at {rate:,.0f}/s")
        found[label] = latency_at_rate(driver, rate, jobs)


def ours(
    stack: DevStack,
    client: Client,
    args: argparse.Namespace,
    report: dict[str, Any],
    images: list[str],
) -> None:
    if args.sections & {"throughput", "latency"}:
        noop_sections(OursDriver(client), args, report)
    if "realwork" in args.sections:
        console.print(f"computeinfra: {len(images)} images")
        report["real_work"]["computeinfra"] = repeated(lambda: ours_seconds(client, images))
    if "scale" in args.sections:
        console.print(f"computeinfra: RSS over {args.scale_jobs:,} jobs")
        report["scale"] = run_scale(
            client, stack.process.pid, args.scale_jobs, args.scale_checkpoint
        )
    if "recovery" in args.sections:
        from recovery import run_recovery  # joins Ray: only after the memory figures

        console.print(f"computeinfra: recovery, {args.repeats} kill(s) of each")
        report["recovery"] = run_recovery(client, stack.settings, args.repeats)
    if "longjob" in args.sections:  # last: its long job still runs when it ends
        from longjob import run_long_job  # joins Ray: only after the memory figures

        console.print(
            f"computeinfra: {args.long_jobs} short jobs at 20/s, idle then beside a long job"
        )
        report["long_job"] = run_long_job(client, stack.settings, args.long_jobs, args.long_seconds)


def ours_on_one_stack(
    root: Path, args: argparse.Namespace, report: dict[str, Any], images: list[str]
) -> None:
    console.print(f"starting a broker and {args.blocks} blocks")
    # The web app is not part of what we measure; the long job of `longjob` is still
    # running when the stack stops, and need not be waited for.
    env = {"COMPUTEINFRA_WEB_PORT": "0", "COMPUTEINFRA_DRAIN_SECONDS": "5"}
    with dev_stack(root, args.blocks, env) as stack, Client(settings=stack.settings) as client:
        try:
            ours(stack, client, args, report, images)
        except BaseException:
            console.print(f"[red]failed; the end of {stack.log}:[/]")
            console.print(stack.log.read_text()[-LOG_TAIL_CHARS:], markup=False)
            raise


def peers(root: Path, args: argparse.Namespace, report: dict[str, Any], images: list[str]) -> None:
    if args.no_peers or not args.sections & {"throughput", "latency", "realwork"}:
        return
    logs = root / "peers"
    logs.mkdir()
    with redis_server() as server:
        for peer in (celery_peer, dramatiq_peer):
            with peer(server.url, args.blocks, logs) as driver:
                noop_sections(driver, args, report)
                if images:  # the same images, each output written as ours writes it
                    console.print(f"{driver.name}: {len(images)} images")
                    out = root / f"{driver.name}-outputs"
                    out.mkdir()
                    run = functools.partial(driver.compress_all, str(out))
                    measure = functools.partial(peer_seconds, run, images)
                    report["real_work"][driver.name] = repeated(measure)
            gc.collect()  # drop result handles while their connections still exist


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "blocks": args.blocks,
        "args": {k: v for k, v in vars(args).items() if k != "sections"},
    }
    with tempfile.TemporaryDirectory(prefix="computeinfra-bench-") as tmp:
        root = Path(tmp)
        images: list[str] = []
        if "realwork" in args.sections:
            images = make_images(root / "inputs" / "images", args.images)
            console.print(f"bare Pool({args.blocks}): {len(images)} images")
            bare = pool_runs(args.blocks, compress, images, RUNS)
            written = root / "pool-outputs"
            written.mkdir()
            writing = functools.partial(compress_and_write, str(written))
            writes = pool_runs(args.blocks, writing, images, RUNS)
            report["real_work"] = {
                "pool_seconds": bare[-1],
                "pool_first_seconds": bare[0],
                "pool_writing_seconds": writes[-1],
                "pool_writing_first_seconds": writes[0],
            }
        if "progress" in args.sections:
            from progress import run_progress

            report["progress"] = run_progress()
        if args.sections - {"startup", "progress"}:
            ours_on_one_stack(root, args, report, images)
        peers(root, args, report, images)
        if "startup" in args.sections:  # its own stacks, after the others stopped
            from startup import run_startup

            console.print(f"start-up: {args.history:,} completed jobs, then an empty directory")
            report["startup"] = run_startup(root, args.blocks, args.history, args.history_pending)
    return report


def main() -> None:
    args = parse()
    report = run(args)
    table_rows = rows(report)
    show(report, table_rows, console)
    saved = save(report)
    console.print(f"saved {saved}")
    if args.readme:
        write_readme(report, table_rows, saved)
        console.print("README.md benchmarks table updated")


if __name__ == "__main__":
    main()
