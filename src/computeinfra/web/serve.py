"""Running the app with uvicorn, on the loopback interface only."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn

from computeinfra.config import Settings
from computeinfra.errors import ConfigError
from computeinfra.web.app import create_app
from computeinfra.web.config import WEB_HOST, WebSettings
from computeinfra.web.figures import Figures

__all__ = ["serve"]

# Open event streams are cut after this long when the server stops, instead of holding it.
GRACEFUL_SHUTDOWN_SECONDS = 2


def serve(
    settings: WebSettings,
    host: str = WEB_HOST,
    figures: Callable[[Settings], Figures] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``figures`` reads the cluster's (see ``create_app``)."""
    if host != WEB_HOST:
        raise ConfigError(f"the web app listens on {WEB_HOST} only, not {host!r}")
    if settings.port <= 0:
        raise ConfigError("the web port must be a positive number; 0 means 'no web app'")
    config = uvicorn.Config(
        create_app(settings, figures=figures),
        host=host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    uvicorn.Server(config).run()
