"""computeinfra as the system under test: the SDK driver for the shared workloads."""

from __future__ import annotations

from collections.abc import Callable

from computeinfra import Client

__all__ = ["OursDriver"]

RESULT_DIR = "bench"


class OursDriver:
    """``Client.submit`` of a zero-second ``sleep``; notified by the handle's done callback."""

    name = "computeinfra"

    def __init__(self, client: Client) -> None:
        self._client = client

    def submit(self, index: int, done: Callable[[int], None]) -> None:
        handle = self._client.submit("sleep", {"seconds": 0}, RESULT_DIR)
        handle.add_done_callback(lambda _h: done(index))

    def check(self) -> None:
        """The SDK fails a handle instead of dropping it, so there is nothing to check."""
