"""Ray-free stand-ins shared by tests: a worker that runs calls one at a time on its own
thread, as a Ray actor does, behind the same ``CallGate`` the real worker keeps."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

from computeinfra.block.calls import CallGate, next_call_id
from computeinfra.block.jobs import Assignment, Outcome


class FutureCall:
    """A ``WorkerCall`` over a ``Future``."""

    def __init__(self, future: Future[list[Outcome]], call_id: int) -> None:
        self.future = future
        self.call_id = call_id

    def wait(self, timeout: float) -> bool:
        return bool(wait_futures([self.future], timeout).done)

    def outcome(self, timeout: float | None = None) -> list[Outcome]:
        return self.future.result(timeout)


class ThreadWorker:
    """A worker port over one thread; ``run`` runs jobs. ``cut`` is answered at once,
    beside the running call, as the actor's control group does."""

    def __init__(self, run: Callable[[list[Assignment]], list[Outcome]]) -> None:
        self.pool = ThreadPoolExecutor(1)
        self.gate = CallGate()
        self._run = run

    def submit(self, assignments: list[Assignment]) -> FutureCall:
        call_id = next_call_id()
        return FutureCall(self.pool.submit(self._gated, assignments, call_id), call_id)

    def _gated(self, assignments: list[Assignment], call_id: int) -> list[Outcome]:
        if not self.gate.begin(call_id):
            return []
        outcomes = self._run(assignments[:1])
        for assignment in assignments[1:]:
            if not self.gate.proceed(call_id):
                break
            outcomes += self._run([assignment])
        return outcomes

    def cut(self, call_ids: list[int], timeout: float) -> dict[int, int]:
        return self.gate.cut(call_ids)
