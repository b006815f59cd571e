"""The Dramatiq app of the benchmark: one no-op actor, Redis broker, Results on Redis.

Defaults otherwise: Dramatiq's Redis consumer prefetches twice its thread count, and the
Results middleware stores each result under the message id for ``get_result``.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

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
