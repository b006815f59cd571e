"""The Dramatiq app of the benchmark: a no-op actor and the real-work one, Redis broker,
Results on Redis.

Defaults otherwise: Dramatiq's Redis consumer prefetches twice its thread count, and the
Results middleware stores each result under the message id for ``get_result``.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from realwork import compress_and_write  # the bench folder is on every worker's path

REDIS_URL_ENV = "BENCH_REDIS_URL"
BROKER_DB = 2
BACKEND_DB = 3
QUEUE = "bench-dramatiq"


def _url(db: int) -> str:
    base = os.environ.get(REDIS_URL_ENV)
    if not base:
        raise RuntimeError(f"{REDIS_URL_ENV} is not set: start this through bench/run.py")
    return f"{base.rstrip('/')}/{db}"


broker = RedisBroker(url=_url(BROKER_DB))
broker.add_middleware(Results(backend=RedisBackend(url=_url(BACKEND_DB))))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def noop() -> None:
    return None


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def compress(out_dir: str, path: str) -> int:
    """The real-work job, as ours runs it (``realwork.compress_and_write``)."""
    return compress_and_write(out_dir, path)
