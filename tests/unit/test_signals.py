"""Stopping `up` and `up --join` (``runtime/up.py``): after the first signal, a Ctrl-C is
the "stop now" of the drain, from the moment the wait ends, never a ``KeyboardInterrupt``
in the middle of the teardown (review of e612e60)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from computeinfra.runtime.up import wait_for_signal

DEADLINE_SECONDS = 10.0


@pytest.fixture
def handlers_restored() -> Iterator[None]:
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def _until(condition: threading.Event) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.usefixtures("handlers_restored")
def test_a_ctrl_c_right_after_the_first_signal_means_stop_now() -> None:
    said: list[str] = []
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
    now = wait_for_signal(said.append)
    assert not now.is_set() and said == []
    # What ran beside the wait (the block keeper) is still stopping when Ctrl-C comes.
    os.kill(os.getpid(), signal.SIGINT)
    _until(now)
    assert now.is_set()
    assert said == ["stopping now: jobs still running are read again by the next owner"]
    os.kill(os.getpid(), signal.SIGINT)  # and again: ignored, the teardown goes on
    assert len(said) == 1
