"""What every request handler shares: settings, tasks, the job board, the event hub."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from computeinfra.client.sdk import Client
from computeinfra.tasks.registry import TaskRegistry
from computeinfra.web.board import JobBoard
from computeinfra.web.config import WebSettings
from computeinfra.web.events import EventHub, JobFeed
from computeinfra.web.figures import ClusterFigures

__all__ = ["AppState", "app_state"]


@dataclass
class AppState:
    settings: WebSettings
    registry: TaskRegistry
    board: JobBoard
    hub: EventHub
    figures: ClusterFigures
    feed: JobFeed | None = None
    _client: Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> Client:
        """The SDK client, made on first submit so the app starts even while Kafka is away."""
        with self._lock:
            if self._client is None:
                # Only submits: completions reach the page through the feed, so its
                # watcher may poll lazily (``Client``'s ``long_poll``).
                self._client = Client(settings=self.settings.core, long_poll=True)
            return self._client

    def close(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def app_state(request: Request) -> AppState:
    """FastAPI dependency: the state ``create_app`` stored on the application."""
    state: AppState = request.app.state.ci
    return state
