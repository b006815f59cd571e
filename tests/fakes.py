"""Ray-free stand-ins shared by tests: a worker call backed by a thread pool's future."""

from __future__ import annotations

from concurrent.futures import CancelledError, Future
from concurrent.futures import wait as wait_futures

from computeinfra.block.jobs import CallCancelled, Outcome


class FutureCall:
    """A ``WorkerCall`` over a ``Future``: cancelling drops it if it has not started."""

    def __init__(self, future: Future[list[Outcome]]) -> None:
        self.future = future

    def wait(self, timeout: float) -> bool:
        # ``wait`` counts a cancelled future done only once its executor met it; Ray's
        # ``wait`` returns a dropped call as soon as it is dropped, as ``done`` does.
        return self.future.done() or bool(wait_futures([self.future], timeout).done)

    def outcome(self, timeout: float | None = None) -> list[Outcome]:
        try:
            return self.future.result(timeout)
        except CancelledError:
            raise CallCancelled("cancelled before it started") from None

    def cancel(self) -> None:
        self.future.cancel()
