"""Real work: JPEG-compress generated images, as jobs and with a bare process pool."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from computeinfra import Client
from computeinfra.tasks.image_compression import _encode

__all__ = [
    "compress",
    "compress_and_write",
    "make_images",
    "ours_seconds",
    "peer_seconds",
    "pool_runs",
    "pool_seconds",
    "repeated",
]

QUALITY = 50
SIZE = (1024, 768)
RESULT_TIMEOUT_SECONDS = 1800.0
# Every system runs the images this many times in a row, and the last run is checked against
# the targets. The first finds a broker that has only carried no-op jobs: ours still
# compiles its transaction code then (its C1 compiler thread 0.43 ms of CPU an image in a
# stack's first run, 0.27 in its second, 0.12 in its third), while Celery's runs took the
# same time in the same probe (docs/performance.md, change 23). The last is nearer the
# steady state of a cluster running batches; the first is reported too.
RUNS = 3


def noop(_item: int) -> None:
    return None


def compress(path: str) -> int:
    """The function both sides run: the image-compression task's own encoder."""
    return len(_encode(Path(path), QUALITY, "jpeg"))


def compress_and_write(out_dir: str, path: str) -> int:
    """``compress``, and write the result as a job's output is written
    (``TaskContext.open_output``): under a temporary name in its folder, synced, renamed
    into place. The fair baseline for a job, which writes what it makes."""
    data = _encode(Path(path), QUALITY, "jpeg")
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, Path(out_dir) / f"{Path(path).stem}.jpg")
    return len(data)


def make_images(folder: Path, count: int) -> list[str]:
    """Mandelbrot images, each a little different, so no two compress the same."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        # The left edge moves right but never reaches the right one (an empty box is an error).
        box = (-2 + 1.5 * i / count, -1.2, 1, 1.2)
        image = Image.effect_mandelbrot(SIZE, box, 60 + i % 40).convert("RGB")
        path = folder / f"img{i:04d}.png"
        image.save(path, compress_level=1)  # lossless either way; the default is 5x slower
        paths.append(str(path))
    return paths


def pool_runs(processes: int, fn: Callable[[Any], Any], items: list[Any], runs: int) -> list[float]:
    """Seconds of each of ``runs`` maps of ``fn`` over ``items``, in turn, on one Pool."""
    with multiprocessing.Pool(processes) as pool:
        pool.map(noop, range(processes))  # start every process before timing
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            pool.map(fn, items, chunksize=1)
            seconds.append(time.perf_counter() - start)
        return seconds


def pool_seconds(processes: int, fn: Callable[[Any], Any], items: list[Any]) -> float:
    """Seconds of one map of ``fn`` over ``items`` on a fresh Pool (``make floor``)."""
    return pool_runs(processes, fn, items, 1)[0]


def repeated(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure`` run ``RUNS`` times in a row: the last run's figures (``jobs`` is one
    run's), with every run's seconds (``runs``), the first's (``first_seconds``), and the
    failures of all of them."""
    found = [measure() for _ in range(RUNS)]
    seconds = [run["seconds"] for run in found]
    failures = sum(run["failures"] for run in found)
    return {**found[-1], "failures": failures, "runs": seconds, "first_seconds": seconds[0]}


def ours_seconds(client: Client, images: list[str]) -> dict[str, Any]:
    """One ``image-compression`` job per image; first submit to last completion."""
    start = time.perf_counter()
    handles = [
        client.submit("image-compression", {"images": [p], "quality": QUALITY}, "bench-images")
        for p in images
    ]
    failures = sum(not h.completion(timeout=RESULT_TIMEOUT_SECONDS).ok for h in handles)
    return {"jobs": len(images), "failures": failures, "seconds": time.perf_counter() - start}


def peer_seconds(
    compress_all: Callable[[list[str]], list[int]], images: list[str]
) -> dict[str, Any]:
    """A peer's jobs, one per image (``compress_all`` submits them all, then waits for each
    output's size); first submit to last result, as ``ours_seconds``."""
    start = time.perf_counter()
    sizes = compress_all(images)
    seconds = time.perf_counter() - start
    return {"jobs": len(images), "failures": sum(size <= 0 for size in sizes), "seconds": seconds}
