"""Live job events: a thread reads the job topics into the board and fans changes out to
every open ``/api/events`` stream (server-sent events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from confluent_kafka import Message

from computeinfra.errors import RequestError
from computeinfra.kafka.fetching import Fetching
from computeinfra.kafka.follow import TopicFollower, tail
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    JOB_STATUS_TOPIC,
    PENDING_TOPIC,
    decode_completion,
    decode_job_status,
    decode_request,
    handed_over,
    key_text,
)
from computeinfra.web.board import JobBoard
from computeinfra.web.models import JobView

__all__ = ["EventHub", "JobFeed", "sse_stream"]

_log = logging.getLogger("computeinfra.web")
SUBSCRIBER_QUEUE = 1000
HEARTBEAT_SECONDS = 15.0
TOPICS = (PENDING_TOPIC, JOB_STATUS_TOPIC, COMPLETED_TOPIC)


class EventHub:
    """Subscribers are asyncio queues; ``publish`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]] = set()

    def subscribe(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]:
        entry = (asyncio.get_running_loop(), asyncio.Queue[str](SUBSCRIBER_QUEUE))
        with self._lock:
            self._subscribers.add(entry)
        return entry

    def unsubscribe(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]) -> None:
        with self._lock:
            self._subscribers.discard(entry)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        frame = f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_offer, queue, frame)

    def job_changed(self, view: JobView) -> None:
        kind = "completion" if view.completion is not None else "state"
        self.publish(kind, view.model_dump(mode="json"))


def _offer(queue: asyncio.Queue[str], frame: str) -> None:
    # A reader too slow to keep up loses events rather than holding memory; it reloads the
    # list when it reconnects.
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(frame)


async def sse_stream(hub: EventHub) -> AsyncIterator[str]:
    """Frames for one client until it disconnects (Starlette then cancels the generator)."""
    entry = hub.subscribe()
    queue = entry[1]
    try:
        yield "retry: 2000\n: connected\n\n"
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield ": heartbeat\n\n"
    finally:
        hub.unsubscribe(entry)


class JobFeed:
    """Reads the last ``tail`` records of each partition of the job topics, then follows them."""

    def __init__(self, bootstrap: str, board: JobBoard, hub: EventHub, tail_records: int) -> None:
        self._board = board
        self._hub = hub
        self._follower = TopicFollower(
            bootstrap, TOPICS, self._handle, start=tail(tail_records), client_id="computeinfra-web",
            fetching=Fetching.LONG,  # lives as long as the app; its feed may start a moment late
        )  # fmt: skip
        self.caught_up = self._follower.caught_up

    def start(self) -> None:
        self._follower.start()

    def stop(self) -> None:
        self._follower.stop()

    def _handle(self, message: Message) -> None:
        raw_key = message.key()
        if not raw_key:
            return
        topic, value = message.topic(), message.value() or b""
        try:
            if topic == PENDING_TOPIC:
                if handed_over(message.headers()):
                    return  # the same job again, for another block: not a new submission
                try:
                    request = decode_request(value)
                except RequestError:
                    request = None
                timestamp = message.timestamp()[1] / 1000
                view = self._board.request(key_text(raw_key), request, timestamp)
            elif topic == JOB_STATUS_TOPIC:
                view = self._board.status(decode_job_status(value))
            else:
                view = self._board.completion(decode_completion(value))
        except ValueError as exc:
            _log.warning("skipping unreadable %s record: %s", topic, exc)
            return
        if view is not None:
            self._hub.job_changed(view)
