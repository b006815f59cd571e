"""A user middleware the test stack loads (``COMPUTEINFRA_MIDDLEWARE``), inert unless a test
asks: a job whose key starts with ``hookfail-`` makes ``before_dispatch`` raise; files in the
folder ``SAMPLE_MIDDLEWARE_FLAGS`` names make ``on_idle`` raise, or end the consume thread."""

from __future__ import annotations

import os
from pathlib import Path

from computeinfra.block.jobs import Assignment
from computeinfra.block.middleware import Middleware

FLAGS = Path(os.environ.get("SAMPLE_MIDDLEWARE_FLAGS", "/nonexistent"))
HOOK_FAIL_PREFIX = "hookfail-"


class SampleHooks(Middleware):
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
