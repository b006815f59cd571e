"""Follows ``pendingJobs`` and ``completedJobs`` from their beginning, for the analyzer."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Message

from computeinfra.kafka.fetching import Fetching
from computeinfra.kafka.follow import BEGINNING, TopicFollower
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    PENDING_TOPIC,
    Completion,
    decode_completion,
    handed_over,
    named_task,
)

__all__ = ["TopicFeed"]

_log = logging.getLogger("computeinfra.analyzer")


class TopicFeed:
    """Follows both job topics from their beginning; callbacks run on the follower's thread,
    in topic order per partition."""

    def __init__(
        self,
        bootstrap: str,
        on_submitted: Callable[[str | None], None],
        on_completed: Callable[[Completion], None],
    ) -> None:
        self._on_submitted = on_submitted
        self._on_completed = on_completed
        self._follower = TopicFollower(
            bootstrap,
            (PENDING_TOPIC, COMPLETED_TOPIC),
            self._handle,
            start=BEGINNING,
            client_id="computeinfra-analyzer",
            # Metrics may be a second late: spares the broker a fetch for every record.
            fetching=Fetching.GATHER,
        )

    def start(self) -> None:
        self._follower.start()

    def stop(self) -> None:
        self._follower.stop()

    def _handle(self, message: Message) -> None:
        if message.topic() == PENDING_TOPIC:
            # A keyless record is no job: a block dead-letters it, as no completion can
            # answer it (counted, it stayed in flight for good). `computeinfra dead` lists it.
            # A record handed over is the same job again, not a new submission.
            if message.key() and not handed_over(message.headers()):
                self._on_submitted(named_task(message.value()))
            return
        try:
            completion = decode_completion(message.value() or b"")
        except ValueError as exc:
            _log.warning("unreadable completion at offset %s: %s", message.offset(), exc)
            return
        self._on_completed(completion)
