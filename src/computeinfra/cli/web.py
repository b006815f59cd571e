"""``computeinfra web``: the web app and HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from computeinfra.runtime.web import WEB_HOST, WebSettings, serve_web

from .output import err_console

__all__ = ["register"]


def web(
    port: Annotated[
        int | None, typer.Option(help="Port; default COMPUTEINFRA_WEB_PORT or 8080.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface; only 127.0.0.1 is allowed.")] = WEB_HOST,
) -> None:
    """Serve the web app: submit forms, live job list, notifications, metrics, /metrics."""
    settings = WebSettings.from_env(port=port)
    err_console.print(f"web app at http://{host}:{settings.port} (Ctrl-C stops)")
    serve_web(settings, host)


def register(app: typer.Typer) -> None:
    app.command()(web)
