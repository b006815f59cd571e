"""The one place that turns the plain classes into Ray actors.

Restart policy is Ray's: every actor restarts forever (``max_restarts=-1``). Worker calls
are never retried by Ray (``max_task_retries=0``) because the supervisor decides whether a
job is sent again, and counts the attempt.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from computeinfra.analyzer.analyzer import Analyzer
from computeinfra.analyzer.events import JobEvent
from computeinfra.analyzer.feed import TopicFeed
from computeinfra.block.calls import next_call_id
from computeinfra.block.jobs import Assignment, Outcome, WorkerLost
from computeinfra.block.middleware.dead_letter import DeadLetterFailures
from computeinfra.block.middleware.loading import load_middleware
from computeinfra.block.middleware.placement import ResourcePlacement
from computeinfra.block.middleware.reporting import AnalyzerReporter
from computeinfra.block.middleware.retries import RetryPolicy
from computeinfra.block.middleware.status import StatusPublisher
from computeinfra.block.peers import PeerLoad
from computeinfra.block.supervisor import Supervisor
from computeinfra.block.worker import Worker
from computeinfra.cluster.nodes import RayNodeDirectory
from computeinfra.config import Settings
from computeinfra.kafka.admin import consumer_lag, ensure_lane_topics
from computeinfra.protocol import PENDING_TOPIC, Completion, Progress
from computeinfra.tasks.registry import load_registry

__all__ = [
    "SUPERVISOR_PREFIX",
    "AnalyzerActor",
    "SupervisorActor",
    "WorkerActor",
    "actor_name",
    "supervisor_names",
]

_log = logging.getLogger("computeinfra.supervisor")
LAG_CACHE_SECONDS = 1.0
SUPERVISOR_PREFIX = "supervisor-"
# A peer's load not answered in this long is left out of one reading (``block/peers.py``).
PEER_TIMEOUT_SECONDS = 0.5
# How often the names of the other supervisors are listed again (a call to Ray's GCS).
PEER_NAMES_SECONDS = 10.0


def actor_name(role: str, block: int | None = None) -> str:
    return role if block is None else f"{role}-{block}"


class _RayWorkerCall:
    """A worker call, waited on through the future Ray completes when the call answers.

    Not ``ray.wait``: a supervisor waits on every call in short steps while it queues more
    work and commits (``block/pipeline.py``), and each ``ray.wait`` cost about 0.1 ms of the
    supervisor's CPU, 17 % of it under the image workload (docs/performance.md, change 19),
    where a future's wait is a lock's. Ray's callback thread sets it (a lost actor as
    ``RayActorError``, a raising call as its cause).
    """

    def __init__(self, ref: ray.ObjectRef[list[Outcome]], call_id: int) -> None:
        self._future: concurrent.futures.Future[list[Outcome]] = ref.future()
        self.call_id = call_id

    def wait(self, timeout: float) -> bool:
        if timeout <= 0:
            return self._future.done()
        done, _ = concurrent.futures.wait([self._future], timeout=timeout)
        return bool(done)

    def outcome(self, timeout: float | None = None) -> list[Outcome]:
        try:
            return self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError as exc:
            if self._future.done():  # the call's own error (a TimeoutError), as it came
                raise
            raise TimeoutError(f"no answer within {timeout} s") from exc
        except RayActorError as exc:
            raise WorkerLost(getattr(exc, "error_msg", None) or type(exc).__name__) from exc


class _RayWorkerPort:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def submit(self, assignments: list[Assignment]) -> _RayWorkerCall:
        call_id = next_call_id()
        return _RayWorkerCall(self._handle.run_all.remote(assignments, call_id), call_id)

    def cut(self, call_ids: list[int], timeout: float) -> dict[int, int]:
        kept: dict[int, int] = ray.get(self._handle.cut.remote(call_ids), timeout=timeout)
        return kept

    def kill(self) -> None:
        ray.kill(self._handle, no_restart=False)

    def ask_to_stop(self, key: str, timeout: float) -> bool:
        asked: bool = ray.get(self._handle.ask_to_stop.remote(key), timeout=timeout)
        return asked

    def progress(self, key: str, timeout: float) -> Progress | None:
        said: Progress | None = ray.get(self._handle.progress_of.remote(key), timeout=timeout)
        return said

    def describe(self, timeout: float) -> dict[str, Any]:
        described: dict[str, Any] = ray.get(self._handle.describe.remote(), timeout=timeout)
        return described


def supervisor_names() -> list[str]:
    """The names of every block's supervisor actor in the cluster (a call to Ray's GCS)."""
    return [name for name in ray.util.list_named_actors() if name.startswith(SUPERVISOR_PREFIX)]


class _RayPeers:
    """The other supervisors' loads (``Supervisor.load``), a Ray call to each. A peer whose
    last call has not answered yet is not called again (a restarting actor queues its calls):
    its load is left out until it answers."""

    def __init__(self) -> None:
        self._me = ray.get_runtime_context().get_actor_name()
        self._handles: dict[str, Any] = {}
        # name: the call not answered yet, as the future Ray sets when it answers (waited on
        # as a worker call is, without ``ray.wait``: ``_RayWorkerCall``)
        self._calls: dict[str, concurrent.futures.Future[PeerLoad]] = {}
        self._listed_at = -PEER_NAMES_SECONDS

    def __call__(self) -> list[PeerLoad]:
        if time.monotonic() - self._listed_at >= PEER_NAMES_SECONDS:
            self._list()
        for name, handle in self._handles.items():
            if name not in self._calls:
                self._calls[name] = handle.load.remote().future()
        concurrent.futures.wait(self._calls.values(), timeout=PEER_TIMEOUT_SECONDS)
        loads = []
        for name, call in list(self._calls.items()):
            if not call.done():
                continue
            del self._calls[name]
            try:
                loads.append(call.result())
            except RayError as exc:  # gone, restarting, or failed: no load from it this time
                _log.debug("no load from %s: %s", name, exc)
                self._listed_at = -PEER_NAMES_SECONDS
        return loads

    def _list(self) -> None:
        names = [name for name in supervisor_names() if name != self._me]
        handles = {}
        for name in names:
            try:
                handles[name] = self._handles.get(name) or ray.get_actor(name)
            except ValueError:  # stopped between the listing and now
                continue
        self._handles, self._listed_at = handles, time.monotonic()
        self._calls = {name: ref for name, ref in self._calls.items() if name in handles}


class _SupervisorHost:
    """Builds a ``Supervisor`` wired to Ray, and starts it as soon as the actor exists.

    Starting in ``__init__`` means a restarted supervisor process resumes consuming by itself.
    Its peers are passed by name, not by handle, so a restart never depends on constructor
    arguments kept in the object store.
    """

    def __init__(
        self,
        settings: Settings,
        block: int,
        member_id: str,
        worker_names: list[str] | None = None,
        group_instance_id: str | None = None,
    ) -> None:
        names = worker_names or [actor_name("worker", block)]
        workers = [_RayWorkerPort(ray.get_actor(name)) for name in names]
        analyzer = ray.get_actor(actor_name("analyzer"))

        def send(events: list[JobEvent]) -> None:
            analyzer.record.remote(events)

        node = ray.get_runtime_context().get_node_id()
        registry = load_registry(settings.task_modules)
        placement = ResourcePlacement(
            registry,
            node,
            RayNodeDirectory(settings.nodes_cache_seconds),
            lambda names: ensure_lane_topics(settings, names),
        )
        self.supervisor = Supervisor(
            settings,
            block,
            workers,
            [
                placement,
                AnalyzerReporter(send, block),
                RetryPolicy(settings.retry_backoff, settings.retry_backoff_max),
                DeadLetterFailures(),
                StatusPublisher(block, node, settings.running_status_after),
                *load_middleware(settings.middleware),
            ],
            node=node,
            member_id=member_id,
            group_instance_id=group_instance_id,
            registry=registry,
            topics=[PENDING_TOPIC, *placement.lanes()],
            peers=_RayPeers(),
        )
        self.supervisor.start()

    def status(self) -> dict[str, Any]:
        return {**self.supervisor.status(), "supervisor_pid": os.getpid()}

    def load(self) -> PeerLoad:
        return self.supervisor.load()

    def stop(self, drain: float | None = None) -> None:
        self.supervisor.stop(drain)

    def reseat(self) -> None:
        self.supervisor.reseat()


class _AnalyzerHost:
    """The analyzer fed by its topic-reading thread and by supervisors' Ray calls."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cached: tuple[float, int | None] = (0.0, None)
        self._lock = threading.Lock()
        self._analyzer = Analyzer(lag=self._backlog)
        self._feed = TopicFeed(settings.bootstrap_servers, self._on_submitted, self._on_completed)
        self._feed.start()

    def _on_submitted(self, task: str | None) -> None:
        with self._lock:
            self._analyzer.submitted(task)

    def _on_completed(self, completion: Completion) -> None:
        with self._lock:
            self._analyzer.completed(completion)

    def record(self, events: list[JobEvent]) -> None:
        with self._lock:
            self._analyzer.record(events)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._analyzer.snapshot()

    def _backlog(self) -> int | None:
        at, value = self._cached
        if time.monotonic() - at > LAG_CACHE_SECONDS:
            value = consumer_lag(self._settings.bootstrap_servers, self._settings.group)
            self._cached = (time.monotonic(), value)
        return value


class _WorkerHost(Worker):
    def _describe(self) -> dict[str, Any]:
        return {**super().describe(), "node": ray.get_runtime_context().get_node_id()}

    def _cut(self, call_ids: list[int]) -> dict[int, int]:
        return super().cut(call_ids)

    def _ask_to_stop(self, key: str) -> bool:
        return super().ask_to_stop(key)

    def _progress_of(self, key: str) -> Progress | None:
        return super().progress_of(key)

    # Their own thread ("control"): a status question, a supervisor taking back calls
    # queued here, and a cancel told to the running job, are answered while a job runs.
    describe = ray.method(concurrency_group="control")(_describe)  # type: ignore[assignment]
    cut = ray.method(concurrency_group="control")(_cut)  # type: ignore[assignment]
    ask_to_stop = ray.method(concurrency_group="control")(_ask_to_stop)  # type: ignore[assignment]
    progress_of = ray.method(concurrency_group="control")(_progress_of)  # type: ignore[assignment]


# ray.remote's typed overloads do not list every actor option (max_concurrency).
_remote: Any = ray.remote
# Jobs run one at a time (the default group); "control" answers describe() beside them.
WorkerActor = _remote(
    max_restarts=-1, max_task_retries=0, num_cpus=1, concurrency_groups={"control": 1}
)(_WorkerHost)
# Threaded so that status() answers while the consume loop runs on its own thread.
SupervisorActor = _remote(max_restarts=-1, max_task_retries=-1, num_cpus=0, max_concurrency=4)(
    _SupervisorHost
)
AnalyzerActor = _remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)(_AnalyzerHost)
