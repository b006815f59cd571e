"""What `up` started is ended when it stops, found by the mark in its environment, even
when the process re-parented itself or wrote its title over its environment (issue #17:
Ray's agents outlived a Ctrl-C during start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from computeinfra.config import RUN_MARK
from computeinfra.runtime.reap import carries, reap


def test_a_mark_after_an_overwritten_start_is_still_found() -> None:
    run = uuid.uuid4().hex
    block = b"\0" * 64 + b"HOME=/root\0" + f"{RUN_MARK}={run}".encode() + b"\0"
    assert carries(block, run)
    assert not carries(block, uuid.uuid4().hex)
    assert not carries(f"{RUN_MARK}={run}0".encode() + b"\0", run)  # a longer id is another


# Ignores SIGTERM, as Ray's agents may, and says when it does.
STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)


# Ignores SIGTERM, as Ray's agents may, and says when it does.
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)


def _start(mark: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-c", STUBBORN],
        env={**os.environ, RUN_MARK: mark},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def test_reap_ends_the_marked_processes_and_no_others() -> None:
    run = uuid.uuid4().hex
    marked, other = _start(run), _start("another")
    try:
        assert reap(run) == 1  # it ignores SIGTERM: SIGKILL after the grace period
        marked.wait(30)  # gone (reap already collected its status: it is our child)
        assert not os.path.exists(f"/proc/{marked.pid}")
        assert other.poll() is None
    finally:
        for process in (marked, other):
            if process.poll() is None:
                process.kill()
                process.wait()
