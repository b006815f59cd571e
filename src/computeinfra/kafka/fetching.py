"""How long the broker holds a follower's fetch, and for how much news (``TopicFollower``).

librdkafka's ``fetch.wait.max.ms`` is how long the broker holds a fetch while nothing is
new. A record, or a transaction's commit marker, ends the wait at once; a long wait spares
the broker an empty fetch twice a second per follower (1.4 % of a core for an idle stack's
five, docs/performance.md, change 3). But librdkafka keeps one fetch in flight per broker,
and the first may carry only the partitions started by then (seen under load: 4 of 12); a
record in any other waits for that fetch to end (likely so after a reconnect too). So only
a follower whose first seconds do not matter waits long.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

__all__ = ["Fetching", "fetch_config"]

FETCH_WAIT_MS = 500
LONG_FETCH_WAIT_MS = 5_000
# A gathering follower's fetch returns once this much is new, or after the wait: under load
# a few fetches a second, not one per record or commit marker (the analyzer's made 1.4 of
# the 9 to 10 requests a job cost at 200 jobs/s: docs/performance.md, change 18).
GATHER_MIN_BYTES = 64 * 1024
GATHER_WAIT_MS = 1_000


class Fetching(Enum):
    """``PROMPT``: librdkafka's 500 ms wait (the SDK's watcher by default, the CLI's, a
    block's cancel reader, whose every commit waits for it). ``LONG``: 5 s, for a follower
    that lives as long as the system and may start a moment late (the web app's feed and
    its SDK client's). ``GATHER``: the broker gathers records for each fetch, so a record
    may be seen up to ``GATHER_WAIT_MS`` late at any time (the analyzer's: metrics)."""

    PROMPT = "prompt"
    LONG = "long"
    GATHER = "gather"


def fetch_config(fetching: Fetching) -> dict[str, Any]:
    """The consumer settings of ``fetching``."""
    if fetching is Fetching.GATHER:
        return {"fetch.wait.max.ms": GATHER_WAIT_MS, "fetch.min.bytes": GATHER_MIN_BYTES}
    wait = LONG_FETCH_WAIT_MS if fetching is Fetching.LONG else FETCH_WAIT_MS
    return {"fetch.wait.max.ms": wait}
