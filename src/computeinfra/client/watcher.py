"""Follows ``completedJobs`` and resolves the futures of the jobs a client waits for."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, InvalidStateError

from confluent_kafka import Message, Producer

from computeinfra.kafka.fetching import Fetching
from computeinfra.kafka.follow import END, TopicFollower
from computeinfra.protocol import COMPLETED_TOPIC, Completion, decode_completion

__all__ = ["CompletionWatcher", "settle"]

_log = logging.getLogger("computeinfra.client")
RECENT_COMPLETIONS = 10_000
POLL_SECONDS = 0.1


def settle(future: Future[Completion], completion: Completion) -> None:
    """Resolve ``future`` unless something else already did (a lookup and the watcher race)."""
    with contextlib.suppress(InvalidStateError):
        future.set_result(completion)


class CompletionWatcher:
    """A background thread reading completions from the moment the watcher was created.

    Completions nobody waits for yet are kept (boundedly) so a handle made a moment later
    still resolves. Older completions are found with ``lookup``.
    """

    def __init__(
        self, bootstrap: str, producer: Producer | None = None, *, long_poll: bool = False
    ) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Future[Completion]]] = {}
        self._recent: OrderedDict[str, Completion] = OrderedDict()
        # From the end as it is now, fixed before the first submit can complete.
        self._follower = TopicFollower(
            bootstrap,
            (COMPLETED_TOPIC,),
            self._handle,
            start=END,
            client_id="computeinfra-watcher",
            # Delivery reports for submits are served on the same thread.
            between_polls=(lambda: producer.poll(0)) if producer is not None else None,
            poll_seconds=POLL_SECONDS,
            fetching=Fetching.LONG if long_poll else Fetching.PROMPT,
        ).start(assign_now=True)

    def expect(self, key: str) -> Future[Completion]:
        """A future for ``key``'s next completion (or one seen since the watcher started)."""
        future: Future[Completion] = Future()
        with self._lock:
            seen = self._recent.get(key)
            if seen is None:
                self._waiting.setdefault(key, []).append(future)
        if seen is not None:
            settle(future, seen)
        return future

    def forget(self, key: str, future: Future[Completion]) -> None:
        with self._lock:
            futures = self._waiting.get(key, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiting.pop(key, None)

    def _resolve(self, completion: Completion) -> None:
        with self._lock:
            futures = self._waiting.pop(completion.key, [])
            if not futures:
                self._recent[completion.key] = completion
                self._recent.move_to_end(completion.key)
                while len(self._recent) > RECENT_COMPLETIONS:
                    self._recent.popitem(last=False)
        for future in futures:
            settle(future, completion)

    def _handle(self, message: Message) -> None:
        try:
            completion = decode_completion(message.value() or b"")
        except ValueError as exc:
            _log.warning("skipping unreadable completion at offset %s: %s", message.offset(), exc)
            return
        self._resolve(completion)

    def close(self) -> None:
        self._follower.stop()
