"""The client SDK: submit jobs without blocking, and learn when each one is done.

::

    with Client() as client:
        job = client.submit("sleep", {"seconds": 1}, result_dir="demo")
        ...                                # keep working
        print(job.result(timeout=60))      # or: await job.aresult(timeout=60)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import KafkaError as RawKafkaError
from confluent_kafka import Message
from pydantic import ValidationError

from computeinfra.config import Settings
from computeinfra.errors import JobError, JobTimeout, KafkaError, RequestError
from computeinfra.kafka.clients import make_producer, partition_count
from computeinfra.kafka.partitioner import Spread
from computeinfra.protocol import (
    COMPLETED_TOPIC,
    PENDING_TOPIC,
    Completion,
    JobRequest,
    decode_completion,
    describe_validation_error,
    encode_request,
)

from .cancel import CancelOutcome, cancel_jobs
from .lookup import find_last
from .watcher import CompletionWatcher, settle

__all__ = ["Client", "JobHandle", "new_key"]

FLUSH_TIMEOUT_SECONDS = 30.0


def new_key() -> str:
    return uuid.uuid4().hex


class JobHandle:
    """A submitted job. Resolves when its completion arrives on ``completedJobs``."""

    def __init__(self, key: str, future: Future[Completion], client: Client | None = None) -> None:
        self.key = key
        self._future = future
        self._client = client

    def __repr__(self) -> str:
        state = self._future.result().status if self.done() else "pending"
        return f"<JobHandle {self.key} {state}>"

    def done(self) -> bool:
        return self._future.done()

    def completion(self, timeout: float | None = None) -> Completion:
        """The completion, whatever its status. Raises ``JobTimeout`` after ``timeout`` s."""
        try:
            return self._future.result(timeout)
        except FutureTimeout:
            raise JobTimeout(f"job {self.key!r} did not complete within {timeout} s") from None

    def result(self, timeout: float | None = None) -> Completion:
        """The completion of a succeeded job; raises ``JobError`` if it failed or was rejected."""
        completion = self.completion(timeout)
        if not completion.ok:
            raise JobError(completion)
        return completion

    async def acompletion(self, timeout: float | None = None) -> Completion:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self._future), timeout)
        except TimeoutError:
            raise JobTimeout(f"job {self.key!r} did not complete within {timeout} s") from None

    async def aresult(self, timeout: float | None = None) -> Completion:
        completion = await self.acompletion(timeout)
        if not completion.ok:
            raise JobError(completion)
        return completion

    def cancel(self, reason: str | None = None) -> CancelOutcome:
        """Cancel the job: one not yet running never runs, one running is stopped (its
        worker killed, what it wrote removed), and its completion says ``cancelled``. One
        that completed keeps its completion (``requested`` is False)."""
        if self._client is None:
            raise RuntimeError("this handle has no client to cancel with: use Client.job(key)")
        return self._client.cancel(self.key, reason)

    async def acancel(self, reason: str | None = None) -> CancelOutcome:
        return await asyncio.to_thread(self.cancel, reason)

    def add_done_callback(self, fn: Callable[[JobHandle], Any]) -> None:
        """Call ``fn(handle)`` once the job completes (on the client's watcher thread)."""
        self._future.add_done_callback(lambda _f: fn(self))


class Client:
    """Submits jobs to ``pendingJobs`` and follows ``completedJobs``. Thread-safe.

    ``long_poll``: the broker holds its fetches of completions up to 5 s, not 0.5 s: less
    work for an idle client that lives long, but a completion may come up to 5 s late in
    its first seconds (``kafka/follow.py``)."""

    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        settings: Settings | None = None,
        long_poll: bool = False,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.bootstrap = bootstrap or self.settings.bootstrap_servers
        self._producer = make_producer(self.bootstrap, client_id="computeinfra-client")
        self._watcher = CompletionWatcher(self.bootstrap, self._producer, long_poll=long_poll)
        self._spread = Spread(lambda: partition_count(self._producer, PENDING_TOPIC))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def submit(
        self,
        task: str,
        payload: dict[str, Any],
        result_dir: str,
        key: str | None = None,
        *,
        time_limit: float | None = None,
        max_attempts: int | None = None,
    ) -> JobHandle:
        """Queue a job and return at once. A delivery failure fails the handle.

        Without a ``key``, the job gets a new one that hashes to the next partition of
        ``pendingJobs`` in turn, so blocks get equal shares of a client's jobs.

        ``time_limit`` (seconds per attempt) may be longer than the task's default, up to
        its ``max_time_limit``; ``max_attempts`` replaces the task's. Unset, the task's own
        apply. A value outside the wire format's bounds raises ``RequestError`` here; one
        over the task's own maximum comes back as the job's ``rejected`` completion."""
        key = key or self._spread.key(new_key)
        try:
            request = JobRequest(
                task=task,
                payload=payload,
                result_dir=result_dir,
                submitted_at=time.time(),
                time_limit=time_limit,
                max_attempts=max_attempts,
            )
        except ValidationError as exc:
            message, field = describe_validation_error(exc)
            raise RequestError(f"invalid job request: {message}", field=field) from None
        # Expect before producing, so even an instant completion cannot be missed.
        future = self._watcher.expect(key)

        def delivered(err: RawKafkaError | None, _msg: Message) -> None:
            if err is not None and not future.done():
                self._watcher.forget(key, future)
                future.set_exception(KafkaError(f"could not submit job {key!r}: {err.str()}"))

        self._producer.produce(
            PENDING_TOPIC,
            key=key.encode(),
            value=encode_request(request),
            on_delivery=delivered,
        )
        self._producer.poll(0)
        return JobHandle(key, future, self)

    def job(self, key: str) -> JobHandle:
        """A handle for a job submitted earlier, possibly by another client or process."""
        future = self._watcher.expect(key)
        if not future.done():
            found = self.lookup(key)
            if found is not None:
                self._watcher.forget(key, future)
                settle(future, found)
        return JobHandle(key, future, self)

    def cancel(self, key: str, reason: str | None = None) -> CancelOutcome:
        """Cancel the job ``key`` (``JobHandle.cancel``); ``UnknownJob`` if there is none.
        A job this client just submitted is flushed to the broker first."""
        self.flush()
        return cancel_jobs(self.bootstrap, [key], reason=reason)[0]

    def lookup(self, key: str) -> Completion | None:
        """The latest completion recorded for ``key``, read from Kafka."""
        found = find_last(self.bootstrap, COMPLETED_TOPIC, key)
        return decode_completion(found[0]) if found else None

    def flush(self, timeout: float = FLUSH_TIMEOUT_SECONDS) -> None:
        """Wait until every submitted job is acknowledged by the broker."""
        if self._producer.flush(timeout):
            raise KafkaError(f"some jobs were not acknowledged by Kafka within {timeout} s")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._watcher.close()
