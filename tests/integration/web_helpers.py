"""Helpers for the web app tests: the app `computeinfra up` serves for the session stack."""

from __future__ import annotations

import httpx

from tests.helpers import Stack, wait_for

WEB_READY_SECONDS = 120


def wait_for_web(stack: Stack) -> None:
    """Wait until the web app answers and has read the job topics up to now."""

    def ready() -> bool:
        try:
            health = httpx.get(f"{stack.web_url}/api/health", timeout=5).json()
        except httpx.HTTPError:
            return False
        return bool(health.get("caught_up"))

    wait_for(ready, WEB_READY_SECONDS, "the web app to answer", interval=0.5)
