"""How a supervisor takes part in the consumer group.

Each supervisor is a static member (``group.instance.id``): a restarted one takes its
partitions straight back instead of triggering two rebalances. Cooperative-sticky
assignment moves only the partitions that must move.
"""

from __future__ import annotations

from confluent_kafka import Consumer

from computeinfra.config import Settings
from computeinfra.kafka.clients import make_consumer
from computeinfra.protocol import MAX_ATTEMPTS_CAP, MAX_TIME_LIMIT_SECONDS

__all__ = [
    "BATCH_SECONDS",
    "SESSION_TIMEOUT_MS",
    "make_supervisor_consumer",
    "max_poll_interval_ms",
]

# How long the group waits for a silent member before giving its partitions to others.
SESSION_TIMEOUT_MS = 10_000
# A batch stops sending new jobs to the worker after this long, so the consumer polls (and
# the group can rebalance) at least this often, plus the jobs already queued.
BATCH_SECONDS = 30.0
# The longest a restarted worker may take to answer again.
WORKER_RESTART_ALLOWANCE_SECONDS = 120.0


def max_poll_interval_ms(settings: Settings) -> int:
    """Long enough for the longest run between polls: the attempts queued at the worker at
    the longest limit, then one job's every attempt, plus backoffs and worker restarts."""
    per_attempt = (
        MAX_TIME_LIMIT_SECONDS + settings.retry_backoff_max + WORKER_RESTART_ALLOWANCE_SECONDS
    )
    attempts = settings.pipeline_depth + MAX_ATTEMPTS_CAP
    return int(min(attempts * per_attempt * 1000, 86_400_000))


def make_supervisor_consumer(settings: Settings, member_id: str) -> Consumer:
    return make_consumer(
        settings.bootstrap_servers,
        settings.group,
        client_id=member_id,
        **{
            "group.instance.id": member_id,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "partition.assignment.strategy": "cooperative-sticky",
            "max.poll.interval.ms": max_poll_interval_ms(settings),
        },
    )
