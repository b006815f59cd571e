"""The Celery app of the benchmark: a no-op task and the real-work one, Redis broker and
Redis result backend.

Settings are the ones a user tuning for many short tasks would pick, from Celery's
"Optimizing" guide: a high prefetch multiplier (short tasks; the default of 4 starves a
fast pool), early acknowledgement (the default), JSON, rate limits off. Results go to the
Redis backend, which notifies clients through pub/sub.
"""

from __future__ import annotations

import os

from celery import Celery
from realwork import compress_and_write  # the bench folder is on every worker's path

REDIS_URL_ENV = "BENCH_REDIS_URL"
BROKER_DB = 0
BACKEND_DB = 1
QUEUE = "bench-celery"
PREFETCH_MULTIPLIER = 32


def _url(db: int) -> str:
    base = os.environ.get(REDIS_URL_ENV)
    if not base:
        raise RuntimeError(f"{REDIS_URL_ENV} is not set: start this through bench/run.py")
    return f"{base.rstrip('/')}/{db}"


app = Celery("bench", broker=_url(BROKER_DB), backend=_url(BACKEND_DB))
app.conf.update(
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    worker_disable_rate_limits=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.compress")
def compress(out_dir: str, path: str) -> int:
    """The real-work job, as ours runs it: the image-compression task's encoder, the output
    written under a temporary name, synced and renamed (``realwork.compress_and_write``)."""
    return compress_and_write(out_dir, path)
