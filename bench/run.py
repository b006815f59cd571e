"""`make bench`: end-to-end figures for computeinfra, as ratios against a bare process pool
measured in the same run on the same machine.

1. no-op throughput: N `sleep` jobs with seconds=0, first submit to last notification,
   against `multiprocessing.Pool(blocks)` mapping a no-op over N items;
2. latency: submit-to-notification p50/p95/p99 of those jobs;
3. real work: M generated 1024x768 images compressed to JPEG quality 50, one job per image,
   against the Pool running the same Pillow function on the same files.

Results are printed and saved to bench/results/<UTC time>.json with the machine description.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console
from rich.table import Table

from computeinfra import Client
from computeinfra.devstack import dev_stack
from computeinfra.tasks.image_compression import _encode

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def noop(_item: int) -> None:
    return None


def compress(path: str) -> int:
    return len(_encode(Path(path), 50, "jpeg"))


def make_images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        box = (-2 + i * 0.01, -1.2, 1, 1.2)
        image = Image.effect_mandelbrot((1024, 768), box, 60 + i % 40).convert("RGB")
        path = folder / f"img{i:04d}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def pool_seconds(blocks: int, fn: Any, items: list[Any]) -> float:
    with multiprocessing.Pool(blocks) as pool:
        pool.map(noop, range(blocks))  # start every process before timing
        start = time.perf_counter()
        pool.map(fn, items, chunksize=1)
        return time.perf_counter() - start


def run_jobs(client: Client, task: str, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Submit all, wait for all; wall time and submit-to-notification latencies."""
    notified: dict[str, float] = {}
    start = time.perf_counter()
    sent = {}
    handles = []
    for payload in payloads:
        handle = client.submit(task, payload, "bench")
        sent[handle.key] = time.perf_counter()
        handle.add_done_callback(lambda h: notified.__setitem__(h.key, time.perf_counter()))
        handles.append(handle)
    failures = sum(not h.completion(timeout=1800).ok for h in handles)
    wall = time.perf_counter() - start
    latencies = sorted(notified[k] - sent[k] for k in sent)
    q = statistics.quantiles(latencies, n=100)
    return {
        "jobs": len(payloads),
        "failures": failures,
        "seconds": wall,
        "per_second": len(payloads) / wall,
        "p50": q[49],
        "p95": q[94],
        "p99": q[98],
    }


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "ray": version("ray"),
        "confluent_kafka": version("confluent-kafka"),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--blocks", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="computeinfra-bench-") as tmp:
        root = Path(tmp)
        images = make_images(root / "inputs" / "images", args.images)
        base_noop = pool_seconds(args.blocks, noop, list(range(args.jobs)))
        base_real = pool_seconds(args.blocks, compress, images)
        with dev_stack(root, args.blocks) as stack, Client(settings=stack.settings) as client:
            run_jobs(client, "sleep", [{"seconds": 0}] * 50)  # warm-up, not reported
            ours_noop = run_jobs(client, "sleep", [{"seconds": 0}] * args.jobs)
            ours_real = run_jobs(
                client, "image-compression", [{"images": [p], "quality": 50} for p in images]
            )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "blocks": args.blocks,
        "noop": {
            "ours": ours_noop,
            "pool_per_second": args.jobs / base_noop,
            "ratio_vs_pool": ours_noop["per_second"] / (args.jobs / base_noop),
        },
        "real_work": {
            "ours": ours_real,
            "pool_seconds": base_real,
            "ratio_vs_pool": ours_real["seconds"] / base_real,
        },
    }
    show(report)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{report['date'].replace(':', '')}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    console.print(f"saved {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


def show(report: dict[str, Any]) -> None:
    noop_, real = report["noop"], report["real_work"]
    table = Table(
        "measure",
        "computeinfra",
        "bare Pool",
        "ratio",
        title=f"{report['blocks']} blocks on {report['machine']['cores']} cores, {report['date']}",
    )
    table.add_row(
        "no-op jobs/s",
        f"{noop_['ours']['per_second']:.0f}",
        f"{noop_['pool_per_second']:.0f}",
        f"{noop_['ratio_vs_pool']:.4f}x",
    )
    table.add_row(
        "no-op latency p50/p95/p99 (ms)",
        "/".join(f"{noop_['ours'][k] * 1000:.0f}" for k in ("p50", "p95", "p99")),
        "—",
        "—",
    )
    table.add_row(
        f"{real['ours']['jobs']} images, wall (s)",
        f"{real['ours']['seconds']:.2f}",
        f"{real['pool_seconds']:.2f}",
        f"{real['ratio_vs_pool']:.2f}x",
    )
    console.print(table)


if __name__ == "__main__":
    main()
