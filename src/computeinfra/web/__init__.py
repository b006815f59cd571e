"""The web app: live job list, notifications, metrics; the HTTP API and ``/metrics``."""

from __future__ import annotations

from computeinfra.web.app import create_app
from computeinfra.web.config import DEFAULT_WEB_PORT, WEB_HOST, WebSettings
from computeinfra.web.serve import serve

__all__ = ["DEFAULT_WEB_PORT", "WEB_HOST", "WebSettings", "create_app", "serve"]
