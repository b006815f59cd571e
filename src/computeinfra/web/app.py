"""The web app: ``create_app(settings)`` builds the FastAPI application.

It is a client of the system like any other: it submits through the SDK, learns about jobs
by reading the job topics, and joins Ray only to read the analyzer's figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from computeinfra.config import Settings
from computeinfra.tasks.registry import load_registry
from computeinfra.web.api import router
from computeinfra.web.board import JobBoard
from computeinfra.web.config import WebSettings
from computeinfra.web.errors import install_error_handlers
from computeinfra.web.events import EventHub, JobFeed
from computeinfra.web.figures import ClusterFigures, Figures
from computeinfra.web.pages import STATIC_DIR, pages
from computeinfra.web.state import AppState

__all__ = ["STATIC_DIR", "create_app"]


def create_app(
    settings: Settings | WebSettings | None = None,
    *,
    follow: bool = True,
    figures: Callable[[Settings], Figures] | None = None,
) -> FastAPI:
    """The app for ``settings``; ``follow=False`` skips the topic reader (for unit tests);
    ``figures`` reads the cluster's (``computeinfra.runtime.web`` passes Ray's)."""
    web = settings if isinstance(settings, WebSettings) else WebSettings.from_env(settings)
    board = JobBoard(web.recent_jobs)
    hub = EventHub()
    state = AppState(
        settings=web,
        registry=load_registry(web.core.task_modules),
        board=board,
        hub=hub,
        figures=ClusterFigures(web.core, figures) if figures else ClusterFigures(web.core),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if follow:
            state.feed = JobFeed(web.core.bootstrap_servers, board, hub, web.tail_records)
            state.feed.start()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="computeinfra",
        version="1",
        description="Submit jobs, follow them live, read the analyzer's figures.",
        lifespan=lifespan,
    )
    app.state.ci = state
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
