"""A user middleware the test stack loads (``COMPUTEINFRA_MIDDLEWARE``), inert unless a test
asks: a job whose key starts with ``hookfail-`` makes ``before_dispatch`` raise; one whose
key starts with ``cancel-late-`` is cancelled (the cancel written and acknowledged) once it
is answered, as the transaction that commits its answer begins; files in the folder
``SAMPLE_MIDDLEWARE_FLAGS`` names make ``on_idle`` raise, or end the consume thread."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from computeinfra.block.jobs import Assignment
from computeinfra.block.middleware import Middleware
from computeinfra.block.transaction import OutboxRecord
from computeinfra.config import Settings
from computeinfra.kafka.clients import make_producer
from computeinfra.protocol import (
    CANCEL_TOPIC,
    CancelRequest,
    Completion,
    Status,
    encode_cancel,
)

FLAGS = Path(os.environ.get("SAMPLE_MIDDLEWARE_FLAGS", "/nonexistent"))
HOOK_FAIL_PREFIX = "hookfail-"
CANCEL_LATE_PREFIX = "cancel-late-"


class SampleHooks(Middleware):
    def __init__(self) -> None:
        self._late: list[Completion] = []  # answered, to be cancelled before their commit

    def extra_records(
        self, completion: Completion, request_value: bytes | None
    ) -> Sequence[OutboxRecord]:
        if (
            completion.key.startswith(CANCEL_LATE_PREFIX)
            and completion.status is not Status.CANCELLED
        ):
            self._late.append(completion)
        return ()

    def commit_records(self, in_hand: Mapping[str, float | None]) -> Sequence[OutboxRecord]:
        """Called as a transaction is about to begin, after the block looked for cancels
        of the answers in it: a cancel written now (and acknowledged) can be caught only by
        the transaction's own check, just before it commits."""
        late, self._late = self._late, []
        if late:  # as a client whose cancel got its 202 between a job's end and its commit
            producer = make_producer(Settings.from_env().bootstrap_servers)
            for completion in late:
                cancel = CancelRequest(reason="late", submitted_at=completion.submitted_at)
                producer.produce(
                    CANCEL_TOPIC, key=completion.key.encode(), value=encode_cancel(cancel)
                )
            if producer.flush(30) != 0:
                raise RuntimeError("could not cancel the late jobs")
        return ()

    def before_dispatch(self, assignment: Assignment) -> None:
        if assignment.key.startswith(HOOK_FAIL_PREFIX):
            raise RuntimeError(f"refusing {assignment.key}")

    def on_idle(self) -> None:
        if (FLAGS / "idle-raises").exists():
            raise ValueError("the idle hook fails")
        died = FLAGS / f"died-{os.getpid()}"
        if (FLAGS / "die-once").exists() and not died.exists():
            died.touch()
            # Not an Exception: nothing in the chain catches it, so it ends the consume
            # thread, as a bug in our own code could.
            raise SystemExit("the consume thread is told to end")
