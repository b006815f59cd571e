"""Follows ``completedJobs`` and resolves the futures of the jobs a client waits for."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, InvalidStateError

from confluent_kafka import Consumer, Producer

from computeinfra.kafka.clients import end_offsets, partition_count, reader
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

    def __init__(self, bootstrap: str, producer: Producer | None = None) -> None:
        self._consumer: Consumer = reader(bootstrap, client_id="computeinfra-watcher")
        partitions = partition_count(self._consumer, COMPLETED_TOPIC)
        # Explicit offsets, not OFFSET_END: a job that completes before the first fetch
        # would otherwise be skipped.
        self._consumer.assign(end_offsets(self._consumer, COMPLETED_TOPIC, partitions))
        self._producer = producer
        self._lock = threading.Lock()
        self._waiting: dict[str, list[Future[Completion]]] = {}
        self._recent: OrderedDict[str, Completion] = OrderedDict()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="computeinfra-watcher", daemon=True)
        self._thread.start()

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

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._producer is not None:
                self._producer.poll(0)  # serve delivery reports for submits
            message = self._consumer.poll(POLL_SECONDS)
            if message is None or message.error():
                continue
            try:
                self._resolve(decode_completion(message.value() or b""))
            except ValueError as exc:
                _log.warning(
                    "skipping unreadable completion at offset %s: %s", message.offset(), exc
                )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
