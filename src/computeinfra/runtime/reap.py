"""Every process a run of ``up`` started, found again at its end, by pid.

Ray's raylet starts agents (the dashboard agent, the runtime-env agent) that are not our
children. When Ctrl-C reaches the raylet before ``ray.shutdown()`` could stop them (a stop
while blocks are still starting), they are re-parented to init and live on. So ``up``
marks its environment with a run id before it starts anything; every process it starts,
directly or not, inherits the mark, and at the end whatever still carries it is ended.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

from computeinfra.config import RUN_MARK, mark_run

__all__ = ["carries", "end_processes", "mark_run", "reap"]

TERM_SECONDS = 5.0


def carries(environ_block: bytes, run_id: str) -> bool:
    """Whether a raw ``/proc/PID/environ`` block carries ``run_id``'s mark. Read raw, not
    with ``psutil.environ()``: Ray's processes write their title over the start of the
    block, and a parser that stops at the first NUL finds nothing (measured: Ray's agents
    orphaned by a Ctrl-C were missed so, and lived on for about a minute)."""
    return f"{RUN_MARK}={run_id}".encode() + b"\0" in environ_block


def _marked(run_id: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(OSError, psutil.Error):
            if carries(Path(f"/proc/{process.pid}/environ").read_bytes(), run_id):
                found.append(process)
    return found


def end_processes(processes: list[psutil.Process], timeout: float = TERM_SECONDS) -> None:
    """SIGTERM each, then SIGKILL those still alive after ``timeout``."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=TERM_SECONDS)


def reap(run_id: str) -> int:
    """End every process still carrying ``run_id``'s mark: SIGTERM, then SIGKILL after
    ``TERM_SECONDS``. Returns how many there were."""
    left = _marked(run_id)
    end_processes(left)
    return len(left)
